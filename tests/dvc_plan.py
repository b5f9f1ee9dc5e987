"""What DVC sees in a workspace, read through DVC's own API in one process (run as a script, in the workspace).

``python dvc_plan.py`` prints JSON ``{"stages": {name: {deps, params, outs, cmd}}}``; with ``--plan`` it adds
``status`` (the stages ``dvc status`` names) and ``would_run`` (the stages ``dvc repro --dry
--force-downstream`` would run), both computed by the same calls the two commands make
(``Repo.status()``, ``Repo.reproduce(dry=True, force_downstream=True)``).

One process instead of three command lines, and one read of params.yaml per process: DVC 3.67 parses a
params file again for every stage that depends on it (~90 parses of a 30 kB YAML per command, most of a
`dvc status` here).  The memo below is keyed by the file's path and bytes and lives only inside this
process, which never writes, so what DVC decides is unchanged; it only stops the tests that ask "what is
stale after this change?" from paying that parse a hundred times each.  For the same reason a dotted
params key is looked up by walking the dicts instead of dpath's search of the whole tree, and dvc.yaml
and dvc.lock, which DVC parses and schema-checks again for each of its three index builds in a plan,
are parsed and checked once per text.

``--serve`` answers one plan per line of stdin, so a test that changes the workspace many times pays
DVC's import once.  The helpers below run the script from a test (``dvc_stages``, ``DvcPlanner``).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import types
from pathlib import Path

HERE = Path(__file__).resolve()
PLAN = "dvc_plan.py: "  # the prefix of a served plan's line (DVC prints its own lines to stdout too)


def _memoise_param_files() -> None:
    import dvc.dependency.param as param

    load, memo = param.load_path, {}

    def load_path(path, fs, **kwargs):
        if kwargs:
            return load(path, fs, **kwargs)
        with open(path, "rb") as f:  # keyed by the bytes: a server (below) sees params.yaml change between plans
            key = (os.path.abspath(path), hashlib.sha256(f.read()).hexdigest())
        if key not in memo:
            memo[key] = load(path, fs)
        return memo[key]

    param.load_path = load_path

    # dpath.get walks the whole params tree for every key (6 ms a key here, ~950 keys per plan); a
    # plain dotted key of nested dicts, all this project's params keys, is a walk down the key
    import dpath

    def get(obj, glob, separator="/", **kwargs):
        if separator != "." or kwargs or any(c in glob for c in "*?[]"):
            return dpath.get(obj, glob, separator=separator, **kwargs)
        for part in glob.split("."):
            if not isinstance(obj, dict) or part not in obj:
                raise KeyError(glob)
            obj = obj[part]
        return obj

    param.dpath = types.SimpleNamespace(get=get, search=dpath.search)

    # dvc.yaml and dvc.lock are parsed and schema-checked again each time DVC builds its index (three
    # times per plan: the stage list, `status`, `repro --dry`): ~0.8 s of the pure-Python YAML
    # constructor and ~0.5 s of voluptuous per read of the lock here.  The same text parses to the same
    # data and passes the same check: keep one parse (hand out copies) and check each text once.
    import copy

    import dvc.utils.strictyaml as strictyaml

    parse, parsed = strictyaml.parse_yaml, {}

    def parse_yaml(text, path, typ="safe"):
        if typ != "safe":
            return parse(text, path, typ=typ)
        key = (path, text)
        if key not in parsed:
            parsed[key] = parse(text, path, typ=typ)
        return copy.deepcopy(parsed[key])

    strictyaml.parse_yaml = parse_yaml
    validate, valid = strictyaml.validate, set()

    def validate_once(data, schema, text=None, path=None, rev=None):
        key = (id(schema), path, rev, text)
        if text is None or key not in valid:
            validate(data, schema, text=text, path=path, rev=rev)
            valid.add(key)

    strictyaml.validate = validate_once


def plan(with_plan: bool) -> dict:
    """What DVC sees in the current directory, read afresh (a new ``Repo``: nothing of an earlier
    plan is reused but the parses memoised above, which are keyed by the files' bytes)."""
    from dvc.repo import Repo, lock_repo

    # closed after each plan (no state database is held between plans); all of one plan under one hold
    # of DVC's repository lock, so its three questions share one index, as the calls nested inside one
    # DVC command do, instead of building it again for each (nothing changes the workspace in between)
    with Repo(".") as repo, lock_repo(repo):
        out: dict = {"stages": {
            s.addressing: {"deps": sorted(d.def_path for d in s.deps if d.def_path != "params.yaml"),
                           "params": sorted(k for d in s.params for k in d.params),
                           "outs": sorted(o.def_path for o in s.outs), "cmd": s.cmd}
            for s in repo.index.stages
        }}  # fmt: skip
        if with_plan:
            out["status"] = sorted(repo.status())
            out["would_run"] = sorted(s.addressing for s in repo.reproduce(dry=True, force_downstream=True))
    return out


def main(argv: list[str]) -> None:
    _memoise_param_files()
    if "--serve" not in argv:
        print(json.dumps(plan("--plan" in argv)))
        return
    # one plan per line read from stdin, one JSON line each after DVC's own messages: DVC is imported
    # once for many plans
    from fsspec.implementations.memory import MemoryFileSystem

    for _ in sys.stdin:
        print(PLAN + json.dumps(plan(True)), flush=True)
        # dvc-data leaves a temporary object per hashed folder in fsspec's process-wide memory store
        # (~700 a plan here) and every later lookup there scans them all: plans got slower one by one
        # (3.5 s to 10 s over 33).  A fresh process starts with the store empty; so does the next plan.
        MemoryFileSystem.store.clear()


def _run(ws: Path, env: dict, *flags: str) -> dict:
    r = subprocess.run([sys.executable, str(HERE), *flags], cwd=ws, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError(f"dvc_plan.py {' '.join(flags)} failed in {ws}:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def dvc_stages(ws: Path, env: dict | None = None) -> dict[str, dict]:
    """Every DVC stage of the workspace: deps (params.yaml left out), params keys, outs, cmd."""
    return _run(ws, env or dict(os.environ))["stages"]


class DvcPlanner:
    """``python dvc_plan.py --plan`` for many states of one workspace from one process (``--serve``): a
    test changes the workspace, calls ``plan()``, and gets what a fresh ``--plan`` would say (the
    stages, ``status`` and ``would_run``), without paying DVC's import and first parses again."""

    def __init__(self, ws: Path, env: dict | None = None):
        self.ws = ws
        # stderr to a file, never an unread pipe: DVC's warnings over many plans could fill a pipe and
        # block the server mid-plan
        self.stderr = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen([sys.executable, str(HERE), "--serve"], cwd=ws, env=env or dict(os.environ),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, text=True)

    def plan(self) -> dict:
        self.proc.stdin.write("plan\n")
        self.proc.stdin.flush()
        for line in self.proc.stdout:
            if line.startswith(PLAN):
                return json.loads(line[len(PLAN) :])
        self.proc.wait()
        self.stderr.seek(0)
        raise AssertionError(f"dvc_plan.py --serve ended ({self.proc.returncode}) in {self.ws}:\n{self.stderr.read()[-3000:]}")

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()
        self.stderr.close()


if __name__ == "__main__":
    main(sys.argv[1:])
