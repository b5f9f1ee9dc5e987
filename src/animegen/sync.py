"""``animegen-sync``: run Snakemake and DVC on one workspace without either losing track of the other.

The two tools describe the same DAG but keep separate books: Snakemake trusts file dates and its own
metadata in ``.snakemake/``, DVC trusts the content hashes in ``dvc.lock``.  Whatever one tool does, the
other has to be told, and they must never write the workspace at the same time (their own locks,
``.snakemake/locks`` and ``.dvc/tmp/lock``, do not know about each other).  Every subcommand holds one
lock, ``.dvc/tmp/animegen-sync.lock``, for its whole duration:

  animegen-sync run -- CMD ...        any command (``snakemake ...``, ``dvc repro``) under the lock
  animegen-sync snakemake [ARGS]      ``snakemake ARGS``, then ``after-snakemake``, under one lock
  animegen-sync repro [ARGS]          ``dvc repro ARGS``, then ``after-dvc``, under one lock
  animegen-sync after-snakemake       record Snakemake's results in dvc.lock: ``dvc commit -f``
  animegen-sync after-dvc             after ``dvc repro``/``pull``/``checkout``: ``snakemake --touch --forceall``
  animegen-sync after-checkout REV    ``git checkout REV`` + ``dvc checkout`` (``--pull``: ``dvc pull``) + after-dvc

Both "after" steps first check that they cannot hide stale results: ``after-snakemake`` refuses while
``snakemake -n`` still has jobs to run (``dvc commit -f`` would record stale outputs as up to date), and
``after-dvc`` refuses while ``dvc status`` is not clean (touching would tell Snakemake the same).

Exit codes: 0 done; a wrapped command's own code when it fails; 3 refused (the message says why,
nothing changed); 1 a step ran but the tools still disagree (the message says how); 75 the workspace is
locked by another command (it is named; ``--wait SECONDS`` waits).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

LOCK = Path(".dvc/tmp/animegen-sync.lock")
HELD_ENV = "ANIMEGEN_SYNC_HELD"  # set for wrapped commands: a nested animegen-sync in the same workspace
EXIT_REFUSED = 3
EXIT_LOCKED = 75  # EX_TEMPFAIL: try again later
NOTHING_TO_DO = "Nothing to be done"
DRY_RUN = re.compile(r"--dry-?run|-[A-Za-z]*n[A-Za-z]*")  # snakemake -n, -pn, --dry-run, --dryrun


class Refused(Exception):
    """A check failed; nothing was changed.  ``code`` is the exit code."""

    def __init__(self, message: str, code: int = EXIT_REFUSED):
        super().__init__(message)
        self.code = code


def _say(message: str) -> None:
    print(f"animegen-sync: {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------- lock
def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        info = {}
    if not info:
        return "another process"
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.get("since", 0)))
    return f"pid {info.get('pid')} ({info.get('command')}) since {since}"


@contextlib.contextmanager
def workspace_lock(root: Path, command: str, wait: float = 0.0):
    """Hold the workspace's one lock (``flock`` on ``.dvc/tmp/animegen-sync.lock``) while the body runs.

    Held already by a parent ``animegen-sync`` in this workspace: the body runs under the parent's lock.
    Held by anyone else: wait up to ``wait`` seconds, then :class:`Refused` with exit code 75, naming the
    holder.  The kernel drops the lock when the holder exits, however it exits: no stale lock to clean
    up.  The lock is not passed on to the wrapped command (DVC forks daemons that would keep it), so stop
    ``animegen-sync`` with SIGTERM or Ctrl-C, which reach the command, not SIGKILL, which would leave the
    command running unlocked.
    """
    path = (root / LOCK).resolve()
    if os.environ.get(HELD_ENV) == str(path):
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait
        announced = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise Refused(
                        f"the workspace {root} is locked by {_holder(path)}: Snakemake and DVC must not write it "
                        f"at the same time; wait for it to finish, or pass --wait SECONDS",
                        EXIT_LOCKED,
                    ) from None
                if not announced:
                    _say(f"waiting (up to {wait:g} s) for the workspace lock, held by {_holder(path)}")
                    announced = True
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "command": command, "since": time.time()}).encode(), 0)
        previous = os.environ.get(HELD_ENV)
        os.environ[HELD_ENV] = str(path)
        try:
            yield
        finally:
            if previous is None:
                os.environ.pop(HELD_ENV, None)
            else:
                os.environ[HELD_ENV] = previous
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------------------- commands
def _tool(name: str) -> str:
    """The tool next to this interpreter (the project's venv) when there is one, else from PATH."""
    local = Path(sys.executable).parent / name
    return str(local) if local.is_file() else (shutil.which(name) or name)


def call(cmd: list[str], root: Path) -> int:
    """Run ``cmd`` in ``root`` and wait for it, whatever signals arrive: the lock outlives the command.

    SIGTERM and SIGHUP are passed on to the command; SIGINT is not (from a terminal the command gets its
    own), so Ctrl-C stops the command, and the lock is released only once it has exited.
    """
    try:
        proc = subprocess.Popen(cmd, cwd=root)
    except OSError as e:
        _say(f"cannot run {cmd[0]}: {e}")
        return 127

    def forward(signum, _frame):
        proc.send_signal(signum)

    handlers = {signal.SIGTERM: forward, signal.SIGHUP: forward, signal.SIGINT: signal.SIG_IGN}
    previous = {s: signal.signal(s, h) for s, h in handlers.items()}
    try:
        code = proc.wait()
        return 128 - code if code < 0 else code  # killed by signal N: 128 + N, as a shell reports it
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def capture(cmd: list[str], root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=root, capture_output=True, text=True)


def _tail(r: subprocess.CompletedProcess, n: int = 30) -> str:
    return "\n".join((r.stdout + r.stderr).strip().splitlines()[-n:])


def snakemake_pending(root: Path) -> dict[str, int]:
    """Jobs ``snakemake -n`` would run, by rule (``all`` left out); empty when there is nothing to do."""
    r = capture([_tool("snakemake"), "-n", "--cores", "1"], root)
    text = r.stdout + r.stderr
    if r.returncode != 0:
        raise Refused(f"`snakemake -n` failed ({r.returncode}):\n{_tail(r)}", r.returncode)
    if NOTHING_TO_DO in text:
        return {}
    stats = text.split("Job stats:", 1)
    jobs = dict(re.findall(r"^(\S+)\s+(\d+)$", stats[1].split("\n\n")[0], re.M)) if len(stats) == 2 else {}
    jobs = {rule: int(n) for rule, n in jobs.items() if rule not in ("all", "total", "job")}
    if not jobs:
        raise Refused(f"cannot tell what `snakemake -n` would run:\n{_tail(r)}")
    return jobs


def dvc_stale(root: Path) -> dict:
    """``dvc status --json``: stages whose deps or outs differ from dvc.lock (empty when clean)."""
    r = capture([_tool("dvc"), "status", "--json"], root)
    if r.returncode != 0:
        raise Refused(f"`dvc status` failed ({r.returncode}):\n{_tail(r)}", r.returncode)
    return json.loads(r.stdout or "{}")


def after_snakemake(root: Path) -> int:
    """Record Snakemake's outputs in dvc.lock (``dvc commit -f``), once Snakemake has nothing left to do."""
    pending = snakemake_pending(root)
    if pending:
        jobs = ", ".join(f"{rule} x{n}" for rule, n in sorted(pending.items()))
        raise Refused(f"Snakemake still has jobs to run ({jobs}); run snakemake first: `dvc commit -f` now "
                      f"would record stale outputs as up to date in dvc.lock")  # fmt: skip
    _say("recording Snakemake's outputs in dvc.lock: dvc commit -f")
    code = call([_tool("dvc"), "commit", "-f", "-q"], root)
    if code:
        return code
    stale = dvc_stale(root)
    if stale:
        _say(f"after `dvc commit -f`, DVC still reports: {json.dumps(stale)}")
        return 1
    _say("dvc.lock records Snakemake's outputs; `dvc status` is clean")
    return 0


def after_dvc(root: Path) -> int:
    """Tell Snakemake that DVC's outputs are current (``snakemake --touch --forceall``), if DVC agrees."""
    stale = dvc_stale(root)
    if stale:
        raise Refused(f"DVC says {len(stale)} stage(s) differ from dvc.lock ({', '.join(sorted(stale))}): run "
                      f"`dvc repro` or `dvc pull` first; touching now would tell Snakemake stale outputs are "
                      f"fresh")  # fmt: skip
    _say("DVC is clean; refreshing Snakemake's dates and metadata: snakemake --touch --forceall")
    r = capture([_tool("snakemake"), "--touch", "--forceall", "--cores", "1"], root)
    if r.returncode != 0:
        _say(f"`snakemake --touch --forceall` failed ({r.returncode}):\n{_tail(r)}")
        return r.returncode
    pending = snakemake_pending(root)
    if pending:
        _say(f"after --touch --forceall, Snakemake would still run {pending}")
        return 1
    _say("Snakemake and DVC both have nothing to do")
    return 0


def after_checkout(root: Path, rev: str, pull: bool) -> int:
    """``git checkout REV``, then the outputs its dvc.lock records (from the cache, or a remote), then after-dvc."""
    code = call(["git", "checkout", rev], root)
    if code:
        return code
    how = "pull" if pull else "checkout"
    code = call([_tool("dvc"), how], root)
    if code:
        _say(f"`dvc {how}` failed: outputs of {rev} are missing" + ("" if pull else "; try --pull (from the DVC remote)"))
        return code
    return after_dvc(root)


# ------------------------------------------------------------------------------------------------ CLI
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="animegen-sync", description=__doc__.split("\n", 1)[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n", 1)[1],
    )  # fmt: skip
    parser.add_argument("-C", "--workspace", default=".", help="the workspace root (folder of dvc.yaml); default: .")
    parser.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                        help="wait this long for the workspace lock (default: fail at once, naming the holder)")  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # everything after these three is the wrapped command's, passed on untouched (see split_argv)
    p = sub.add_parser("run", help="run any command under the workspace lock: animegen-sync run -- dvc repro")
    p.add_argument("cmd", nargs="*", help="the command and its arguments")
    p = sub.add_parser("snakemake", help="snakemake ARGS, then after-snakemake (skipped for a dry run)")
    p.add_argument("args", nargs="*", help="snakemake's arguments")
    p = sub.add_parser("repro", help="dvc repro ARGS, then after-dvc")
    p.add_argument("args", nargs="*", help="dvc repro's arguments")
    sub.add_parser("after-snakemake", help="record Snakemake's outputs in dvc.lock (dvc commit -f)")
    sub.add_parser("after-dvc", help="after dvc repro/pull/checkout: snakemake --touch --forceall")
    p = sub.add_parser("after-checkout", help="git checkout REV, dvc checkout, then after-dvc")
    p.add_argument("rev")
    p.add_argument("--pull", action="store_true", help="dvc pull (fetch from the remote) instead of dvc checkout")
    return parser


PASS_THROUGH = ("run", "snakemake", "repro")
GLOBAL_WITH_VALUE = ("-C", "--workspace", "--wait")


def split_argv(argv: list[str]) -> tuple[list[str], list[str]]:
    """``(ours, theirs)``: argparse would take ``snakemake --cores 2`` 's ``--cores`` for one of ours."""
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in GLOBAL_WITH_VALUE:
            i += 2
            continue
        if a.startswith("-"):
            i += 1
            continue
        if a in PASS_THROUGH and argv[i + 1 : i + 2] not in (["-h"], ["--help"]):
            rest = argv[i + 1 :]
            return argv[: i + 1], rest[1:] if rest[:1] == ["--"] else rest
        break
    return argv, []


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ours, rest = split_argv(argv)
    args = build_parser().parse_args(ours)
    root = Path(args.workspace).resolve()
    if not (root / "dvc.yaml").is_file():
        _say(f"{root} has no dvc.yaml: not a workspace (pass -C DIR)")
        return 2
    if args.command == "run" and not rest:
        _say("run: no command given (animegen-sync run -- CMD ...)")
        return 2
    try:
        with workspace_lock(root, "animegen-sync " + shlex.join(argv), args.wait):
            if args.command == "run":
                return call(rest, root)
            if args.command == "snakemake":
                code = call([_tool("snakemake"), *rest], root)
                return code or (0 if any(DRY_RUN.fullmatch(a) for a in rest) else after_snakemake(root))
            if args.command == "repro":
                return call([_tool("dvc"), "repro", *rest], root) or after_dvc(root)
            if args.command == "after-snakemake":
                return after_snakemake(root)
            if args.command == "after-dvc":
                return after_dvc(root)
            return after_checkout(root, args.rev, args.pull)
    except Refused as e:
        _say(str(e))
        return e.code


if __name__ == "__main__":
    sys.exit(main())
