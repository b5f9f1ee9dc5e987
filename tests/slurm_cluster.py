"""A throw-away single-node SLURM cluster on this machine, for tests (Debian's slurm-wlm, munge, a fake GPU).

    install()              apt-get install slurm-wlm unless slurmctld is already there (root only)
    c = Cluster(state_dir)
    c.start()              munged (unless one answers already), slurmctld, slurmd; waits for `idle`
    c.stop()               cancels every job, stops every daemon it started by its PID, restores /etc/slurm

Two partitions on the one node, `cpu` (the default) and `gpu`, and one fake GPU (a GRES backed by a
character device made with mknod), so that a workflow's partition and GPU mapping is checked for real.
The node is declared bigger than this machine (8 CPUs, 64 GB) with SlurmdParameters=config_overrides,
so that a profile's per-stage cpus and memory can be scheduled here; nothing is enforced (task/none,
no cgroups), so a job just runs on the machine's real cores.

The configuration lives in a fresh state folder (saved state would bring back old DRAIN reasons);
/etc/slurm/slurm.conf and gres.conf are symlinks to it while the cluster runs, because the jobstep
plugin clears every SLURM_* variable (SLURM_CONF included) before its inner `srun`. Whatever was at
those two paths is put back by stop(). A lock file keeps two test runs on one machine from sharing
/etc/slurm and the ports; a slurmctld or slurmd already running (not ours) is refused.

By hand:  python tests/slurm_cluster.py start DIR  /  python tests/slurm_cluster.py stop DIR
See ../shared/docs/research/scale-out.md for the recipe this follows.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

SBIN = Path("/usr/sbin")
ETC = Path("/etc/slurm")
MUNGE_KEY = Path("/etc/munge/munge.key")
MUNGE_RUN = Path("/run/munge")
LOCK = Path("/tmp/animegen-slurm-cluster.lock")
SAVED = ".animegen-saved"
DAEMONS = ("slurmctld", "slurmd")
PARTITIONS = ("cpu", "gpu")  # what workflow/profiles/slurm maps the stages to
NODE_CPUS = 8
NODE_MEM_MB = 64000


class SlurmUnavailable(Exception):
    """SLURM cannot be installed or run on this machine (the reason is the message): tests skip."""


def _run(*cmd: str, check: bool = True, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stdout[-2000:]}{r.stderr[-2000:]}")
    return r


def installed() -> bool:
    return all((SBIN / d).is_file() for d in ("slurmctld", "slurmd", "munged")) and bool(shutil.which("sbatch"))


def install(timeout: float = 900) -> None:
    """slurm-wlm (SLURM 22.05 on Debian 12, with munge) from apt, unless it is there already.

    Raises SlurmUnavailable with the reason when that cannot be done (not root, no apt, apt fails)."""
    if os.geteuid() != 0:
        raise SlurmUnavailable("a throw-away SLURM cluster needs root (apt-get install slurm-wlm, munged, slurmd)")
    if installed():
        return
    if not shutil.which("apt-get"):
        raise SlurmUnavailable("slurm-wlm is not installed and there is no apt-get to install it")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # No service may start during the install (Docker images ship this file; create it if missing).
    policy = Path("/usr/sbin/policy-rc.d")
    made_policy = not policy.exists()
    if made_policy:
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    try:
        cmd = ("apt-get", "install", "-y", "-q", "slurm-wlm")
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
        if r.returncode != 0:  # stale or missing package lists: update once and retry
            subprocess.run(("apt-get", "update", "-q"), capture_output=True, text=True, env=env, timeout=timeout)
            r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise SlurmUnavailable(f"apt-get install slurm-wlm took more than {timeout:.0f} s") from None
    finally:
        if made_policy:
            policy.unlink()
    if r.returncode != 0 or not installed():
        tail = (r.stdout + r.stderr).strip().splitlines()[-3:]
        raise SlurmUnavailable(f"apt-get install slurm-wlm failed ({r.returncode}): {' | '.join(tail)}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie (exited, not yet reaped) counts as gone
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def pids_named(name: str) -> list[int]:
    """PIDs of running processes whose executable name is ``name`` (e.g. slurmctld)."""
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if (p / "comm").read_text().strip() == name and _alive(int(p.name)):
                    out.append(int(p.name))
            except OSError:
                pass
    return sorted(out)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _terminate(pid: int, timeout: float = 15) -> bool:
    """SIGTERM, then SIGKILL after ``timeout``; True when the process is gone."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return True
        end = time.monotonic() + wait
        while time.monotonic() < end:
            if not _alive(pid):
                return True
            time.sleep(0.1)
    return not _alive(pid)


def munge_works() -> bool:
    try:
        cred = _run("munge", "-n", check=False, timeout=10)
        return cred.returncode == 0 and _run("unmunge", input=cred.stdout, check=False, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


class Cluster:
    """One slurmctld + one slurmd (+ munged when none runs) with their state under ``state``."""

    def __init__(self, state: Path):
        self.state = Path(state).resolve()
        self.host = socket.gethostname().split(".")[0]
        self.conf = self.state / "etc" / "slurm.conf"
        self.book = self.state / "cluster.json"  # what start() did, so that stop() works from another process
        self._lock_fd: int | None = None

    # ----------------------------------------------------------------------------------------- config
    def write_config(self) -> None:
        d = self.state
        for sub in ("etc", "ctld", "spool", "log", "run"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        gpu = d / "fakegpu0"
        if not gpu.exists():
            os.mknod(gpu, 0o666 | 0o020000, os.makedev(1, 3))  # a character device (/dev/null's numbers)
        (d / "etc" / "gres.conf").write_text(f"AutoDetect=off\nNodeName={self.host} Name=gpu Type=fake File={gpu}\n")
        partitions = "\n".join(
            f"PartitionName={p} Nodes={self.host}{' Default=YES' if i == 0 else ''} MaxTime=INFINITE State=UP"
            for i, p in enumerate(PARTITIONS)
        )
        self.conf.write_text(
            f"""# Written by tests/slurm_cluster.py: a throw-away single-node cluster (no accounting database).
ClusterName=animegen-ci
SlurmctldHost={self.host}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
# finished jobs stay visible to squeue (and to the executor's squeue status checks) for 30 minutes
MinJobAge=1800
SlurmdParameters=config_overrides
StateSaveLocation={d}/ctld
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/run/slurmctld.pid
SlurmdPidFile={d}/run/slurmd.pid
SlurmctldLogFile={d}/log/slurmctld.log
SlurmdLogFile={d}/log/slurmd.log
GresTypes=gpu
NodeName={self.host} CPUs={NODE_CPUS} RealMemory={NODE_MEM_MB} Gres=gpu:fake:1 State=UNKNOWN
{partitions}
"""
        )

    # ----------------------------------------------------------------------------------------- /etc
    def _link_etc(self, book: dict) -> None:
        ETC.mkdir(parents=True, exist_ok=True)
        for name in ("slurm.conf", "gres.conf"):
            target, dest = self.state / "etc" / name, ETC / name
            if dest.is_symlink() or dest.exists():
                saved = ETC / (name + SAVED)
                if saved.exists() or saved.is_symlink():
                    raise RuntimeError(f"{saved} exists: an earlier test cluster was not stopped; restore it by hand")
                dest.rename(saved)
                book["saved"].append(name)
            dest.symlink_to(target)
            book["linked"].append(name)
            self._save(book)

    def _unlink_etc(self, book: dict) -> None:
        for name in book.get("linked", []):
            dest = ETC / name
            if dest.is_symlink() and Path(os.readlink(dest)) == self.state / "etc" / name:
                dest.unlink()
        for name in book.get("saved", []):
            saved, dest = ETC / (name + SAVED), ETC / name
            if (saved.exists() or saved.is_symlink()) and not (dest.exists() or dest.is_symlink()):
                saved.rename(dest)
        book["linked"], book["saved"] = [], []

    # ----------------------------------------------------------------------------------------- lock
    def _lock(self, timeout: float) -> None:
        fd = os.open(LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        end = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > end:
                    os.close(fd)
                    raise RuntimeError(f"another test cluster holds {LOCK} for more than {timeout:.0f} s") from None
                time.sleep(1)
        self._lock_fd = fd

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    # ----------------------------------------------------------------------------------------- start
    def _save(self, book: dict) -> None:
        self.book.write_text(json.dumps(book, indent=1))

    def _load(self) -> dict:
        try:
            return json.loads(self.book.read_text())
        except (OSError, ValueError):
            return {}

    def start(self, timeout: float = 90, lock_timeout: float = 900) -> None:
        """Start the cluster and wait until its node is idle in both partitions (RuntimeError if not)."""
        if os.geteuid() != 0:
            raise SlurmUnavailable("a throw-away SLURM cluster needs root")
        if not installed():
            raise SlurmUnavailable("slurm-wlm is not installed (call install() first)")
        self._lock(lock_timeout)
        book = {"state": str(self.state), "pids": {}, "linked": [], "saved": []}
        try:
            for name in DAEMONS:
                if pids_named(name):
                    raise SlurmUnavailable(
                        f"a {name} not started by this test is already running (pid {pids_named(name)}); "
                        "the throw-away cluster would clash with it"
                    )
            self.write_config()
            self._save(book)
            self._start_munge(book)
            self._link_etc(book)
            for name in DAEMONS:
                _run(str(SBIN / name), "-f", str(self.conf), timeout=30)
                pid = self._wait_pid(self.state / "run" / f"{name}.pid", 15)
                book["pids"][name] = pid
                self._save(book)
            self._wait_idle(timeout)
        except BaseException:
            self.stop()
            raise

    def _start_munge(self, book: dict) -> None:
        if munge_works():  # a munged already answers (a system one, say): use it and leave it alone
            return
        if not MUNGE_KEY.exists():
            MUNGE_KEY.parent.mkdir(parents=True, exist_ok=True)
            MUNGE_KEY.write_bytes(os.urandom(1024))
            shutil.chown(MUNGE_KEY, "munge", "munge")
            MUNGE_KEY.chmod(0o400)
        _run("install", "-d", "-o", "munge", "-g", "munge", "-m", "0755", str(MUNGE_RUN))
        pidfile = MUNGE_RUN / "munged.pid"
        pidfile.unlink(missing_ok=True)
        # --force: a socket left by a munged that died is reused (one that runs was ruled out above)
        _run("runuser", "-u", "munge", "--", str(SBIN / "munged"), "--force", f"--pid-file={pidfile}", timeout=30)
        book["pids"]["munged"] = self._wait_pid(pidfile, 15)
        self._save(book)
        end = time.monotonic() + 15
        while not munge_works():
            if time.monotonic() > end:
                raise RuntimeError("munged started but munge -n | unmunge fails")
            time.sleep(0.2)

    @staticmethod
    def _wait_pid(path: Path, timeout: float) -> int:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            pid = _read_pid(path)
            if pid and _alive(pid):
                return pid
            time.sleep(0.1)
        raise RuntimeError(f"no live PID in {path} after {timeout:.0f} s")

    def _wait_idle(self, timeout: float) -> None:
        end = time.monotonic() + timeout
        states = ""
        while time.monotonic() < end:
            r = _run("sinfo", "-h", "-o", "%P %T", check=False, timeout=10)
            states = r.stdout.strip()
            rows = dict(line.split() for line in states.splitlines() if len(line.split()) == 2)
            if {p.rstrip("*") for p in rows} == set(PARTITIONS) and set(rows.values()) == {"idle"}:
                return
            time.sleep(0.3)
        raise RuntimeError(f"the node is not idle after {timeout:.0f} s (sinfo: {states!r})\n{self.logs()}")

    def logs(self, lines: int = 30) -> str:
        out = []
        for name in DAEMONS:
            log = self.state / "log" / f"{name}.log"
            if log.exists():
                out.append(f"--- {log}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-lines:]))
        return "\n".join(out)

    # ----------------------------------------------------------------------------------------- stop
    def started_pids(self) -> dict[str, int]:
        """The daemons this cluster started that are still alive, by name."""
        return {name: pid for name, pid in self._load().get("pids", {}).items() if _alive(pid)}

    def stop(self) -> dict[str, int]:
        """Cancel every job, stop every daemon this cluster started, restore /etc/slurm.

        Idempotent. Returns the daemons still alive afterwards (empty when all went)."""
        book = self._load()
        pids = book.get("pids", {})
        try:
            if pids.get("slurmctld") and _alive(pids["slurmctld"]):
                _run("scancel", "--full", "--user", "root", check=False, timeout=30)
                end = time.monotonic() + 30
                while time.monotonic() < end and _run("squeue", "-h", "-t", "PD,R,CG", check=False, timeout=10).stdout.strip():
                    time.sleep(0.5)
            for name in ("slurmd", "slurmctld", "munged"):  # munged last: the others need it to shut down
                if name in pids:
                    _terminate(pids[name])
            if book:
                self._unlink_etc(book)
                self._save(book)
        finally:
            self._unlock()
        return self.started_pids()


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("start", "stop"):
        print(__doc__)
        return 2
    cluster = Cluster(Path(argv[1]))
    if argv[0] == "start":
        install()
        cluster.start()
        print(f"cluster up, state in {cluster.state}; stop it with: python {__file__} stop {cluster.state}")
        return 0
    left = cluster.stop()
    print(f"still running: {left}" if left else "stopped")
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
