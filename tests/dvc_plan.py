"""What DVC sees in a workspace, read through DVC's own API in one process (run as a script, in the workspace).

``python dvc_plan.py`` prints JSON ``{"stages": {name: {deps, params, outs, cmd}}}``; with ``--plan`` it adds
``status`` (the stages ``dvc status`` names) and ``would_run`` (the stages ``dvc repro --dry
--force-downstream`` would run), both computed by the same calls the two commands make
(``Repo.status()``, ``Repo.reproduce(dry=True, force_downstream=True)``).

One process instead of three command lines, and one read of params.yaml per process: DVC 3.67 parses a
params file again for every stage that depends on it (~90 parses of a 30 kB YAML per command, most of a
`dvc status` here).  The memo below is keyed by the file's path, size and modification time and lives
only inside this read-only process, so what DVC decides is unchanged; it only stops the tests that ask
"what is stale after this change?" from paying that parse a hundred times each.  For the same reason a
dotted params key is looked up by walking the dicts instead of dpath's search of the whole tree.

The helpers below run the script from a test (``dvc_stages``, ``dvc_plan``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

HERE = Path(__file__).resolve()


def _memoise_param_files() -> None:
    import dvc.dependency.param as param

    load, memo = param.load_path, {}

    def load_path(path, fs, **kwargs):
        if kwargs:
            return load(path, fs, **kwargs)
        st = os.stat(path)
        key = (os.path.abspath(path), st.st_size, st.st_mtime_ns)
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


def main(argv: list[str]) -> None:
    _memoise_param_files()
    from dvc.repo import Repo

    repo = Repo(".")
    out: dict = {"stages": {
        s.addressing: {"deps": sorted(d.def_path for d in s.deps if d.def_path != "params.yaml"),
                       "params": sorted(k for d in s.params for k in d.params),
                       "outs": sorted(o.def_path for o in s.outs), "cmd": s.cmd}
        for s in repo.index.stages
    }}  # fmt: skip
    if "--plan" in argv:
        out["status"] = sorted(repo.status())
        out["would_run"] = sorted(s.addressing for s in repo.reproduce(dry=True, force_downstream=True))
    print(json.dumps(out))


def _run(ws: Path, env: dict, *flags: str) -> dict:
    r = subprocess.run([sys.executable, str(HERE), *flags], cwd=ws, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError(f"dvc_plan.py {' '.join(flags)} failed in {ws}:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def dvc_stages(ws: Path, env: dict | None = None) -> dict[str, dict]:
    """Every DVC stage of the workspace: deps (params.yaml left out), params keys, outs, cmd."""
    return _run(ws, env or dict(os.environ))["stages"]


def dvc_plan(ws: Path, env: dict | None = None) -> dict:
    """``dvc_stages`` plus ``status`` and ``would_run`` (see the module docstring)."""
    return _run(ws, env or dict(os.environ), "--plan")


if __name__ == "__main__":
    main(sys.argv[1:])
