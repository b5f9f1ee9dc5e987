"""The pipeline through `snakemake --workflow-profile workflow/profiles/slurm` on a real SLURM cluster.

A throw-away single-node cluster (tests/slurm_cluster.py: Debian's slurm-wlm, installed with apt when
missing; partitions `cpu` and `gpu`; one fake GPU GRES) runs a shrunk demo DAG: two datasets through
every data stage, one tiny DCGAN trained, sampled and evaluated, one dataset pair compared, the summary.
SLURM's own job records then say where each stage ran and what it asked for; those are checked against
the jobs the params imply and against the profile. Every daemon the test started is stopped at the end.
Skips (with the reason) where SLURM cannot be installed or run: not root, no apt, apt fails.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, copy_workspace, dump_yaml, load_yaml, without_study_c
from slurm_cluster import DAEMONS, Cluster, SlurmUnavailable, install, pids_named
from test_pipeline import GPU_STAGES, shrink

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

BIN = Path(sys.executable).parent
PROFILE = "workflow/profiles/slurm"
SLURM_PLUGINS = BIN.parent / "slurm-plugins"  # snakemake-executor-plugin-slurm(-jobstep), installed by the Makefile
DATASETS = ["face_a_early", "face_a_later"]
MODEL = "dcgan"
PAIR = "a_early_vs_a_later"
DATA_RULES = ["collect", "cutout", "resize", "split", "reference", "derive"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    try:
        install()
    except SlurmUnavailable as e:
        pytest.skip(f"no SLURM cluster here: {e}")
    c = Cluster(tmp_path_factory.mktemp("slurm"))
    try:
        c.start()
    except SlurmUnavailable as e:
        pytest.skip(f"no SLURM cluster here: {e}")
    yield c
    c.stop()


@pytest.fixture(scope="module")
def ran(cluster, tmp_path_factory) -> dict:
    ws = copy_workspace(tmp_path_factory.mktemp("slurm-ws") / "ws")
    params = load_yaml(ws / "params.yaml")
    params["datasets"] = {d: params["datasets"][d] for d in DATASETS}
    params["models"] = {MODEL: params["models"][MODEL]}
    params["compare"]["pairs"] = {PAIR: params["compare"]["pairs"][PAIR]}
    without_study_c(params)  # their datasets are not in this DAG
    shrink(params)
    dump_yaml(params, ws / "params.yaml")
    # the executor plugin lives outside the environment's path (see the Makefile); the jobs inherit this
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(SLURM_PLUGINS)}
    cmd = [
        "snakemake", "--workflow-profile", PROFILE,
        "--jobs", "3",                                   # this machine has 2 cores
        "--slurm-no-account",                            # the test cluster has no accounts
        "--slurm-init-seconds-before-status-checks", "2",  # the first check after 2 s, not 40
    ]  # fmt: skip
    r = subprocess.run(cmd, cwd=ws, env=env, capture_output=True, text=True, timeout=1200)
    if r.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout[-4000:]}\n{r.stderr[-6000:]}\n{cluster.logs()}")
    return {"ws": ws, "jobs": slurm_jobs(), "log": r.stderr}


def slurm_jobs() -> dict[tuple[str, str], list[dict]]:
    """SLURM's records of every job it knows (MinJobAge keeps finished ones), by (rule, wildcards).

    The executor names each job in its comment: rule_<rule> or rule_<rule>_wildcards_<values>."""
    out = subprocess.run(["scontrol", "-d", "-o", "show", "job"], capture_output=True, text=True, check=True).stdout
    jobs: dict[tuple[str, str], list[dict]] = {}
    for line in out.splitlines():
        if not line.startswith("JobId="):
            continue
        rec = dict(re.findall(r"(?:^|\s)([A-Za-z_/:]+)=(\S*)", line))
        m = re.fullmatch(r"rule_([a-z_]+?)(?:_wildcards_(.+))?", rec.get("Comment", ""))
        key = (m.group(1), m.group(2) or "") if m else ("?", rec.get("Comment", ""))
        jobs.setdefault(key, []).append(rec)
    return jobs


def expected_jobs() -> set[tuple[str, str]]:
    """The jobs the shrunk params imply (rule, wildcard value); `all` runs in Snakemake itself."""
    jobs = {(rule, d) for rule in DATA_RULES for d in DATASETS}
    jobs |= {(rule, MODEL) for rule in ("train", "sample", "evaluate", "track")}
    return jobs | {("compare", PAIR), ("summary", ""), ("survey", ""), ("survey_score", "")}  # an empty survey


def profile() -> dict:
    return load_yaml(REPO / PROFILE / "config.yaml")


def mem_mb(rec: dict) -> int:
    value, unit = re.fullmatch(r"(\d+)([MG])", rec["MinMemoryNode"]).groups()
    return int(value) * (1024 if unit == "G" else 1)


def minutes(limit: str) -> int:
    """SLURM's TimeLimit ([D-]HH:MM:SS) in minutes."""
    days, _, hms = limit.rpartition("-")
    h, m, s = (int(x) for x in hms.split(":"))
    return (int(days or 0) * 24 + h) * 60 + m + (s > 0)


def test_every_stage_ran_once_as_a_completed_slurm_job(ran):
    jobs = ran["jobs"]
    assert set(jobs) == expected_jobs(), f"SLURM jobs {sorted(jobs)} vs expected {sorted(expected_jobs())}"
    for key, recs in jobs.items():
        assert len(recs) == 1, f"{key} was submitted {len(recs)} times"
        rec = recs[0]
        assert rec["JobState"] == "COMPLETED" and rec["ExitCode"] == "0:0", (key, rec["JobState"], rec["ExitCode"])
        rule, wildcard = key
        # the executor's per-job log, named by SLURM's job id, written by the job itself
        log = ran["ws"] / ".snakemake/slurm_logs" / f"rule_{rule}" / wildcard / f"{rec['JobId']}.log"
        assert log.is_file(), log
        assert "1 of 1 steps (100%) done" in log.read_text()
    # and Snakemake counted the same number of jobs (the local `all` job aside)
    done = re.findall(r"(\d+) of (\d+) steps \(100%\) done", ran["log"])
    assert done and int(done[-1][1]) == len(expected_jobs()) + 1


def test_gpu_stages_ran_in_the_gpu_partition_with_one_gpu(ran):
    gpu_jobs = {key: recs[0] for key, recs in ran["jobs"].items() if key[0] in GPU_STAGES}
    # no CAM and no translator in this DAG
    assert {k[0] for k in gpu_jobs} == GPU_STAGES - {"cam_classifier", "cam_select", "train_translator", "translate",
                                                     "evaluate_translation", "track_translator"}  # fmt: skip
    for key, rec in gpu_jobs.items():
        assert rec["Partition"] == "gpu", (key, rec["Partition"])
        assert rec.get("TresPerNode") == "gres:gpu:1", (key, rec.get("TresPerNode"))  # sbatch --gres=gpu:1
        assert "TresPerJob" not in rec, (key, rec["TresPerJob"])  # and not a second request via --gpus
        assert rec.get("JOB_GRES") == "gpu:fake:1", (key, rec.get("JOB_GRES"))  # the one GPU was allocated


def test_the_one_gpu_ran_one_gpu_stage_at_a_time(ran):
    """SLURM, not Snakemake, serialised the GPU stages: the profile sets no `resources: gpu=` limit."""
    spans = sorted((rec["StartTime"], rec["EndTime"]) for (rule, _), [rec] in ran["jobs"].items() if rule in GPU_STAGES)
    assert len(spans) == sum(rule in GPU_STAGES for rule, _ in expected_jobs())
    for (_, end), (start, _) in zip(spans, spans[1:]):
        assert start >= end, f"two GPU jobs held the one GPU at once: {spans}"
    assert "resources" not in profile()


def test_cpu_stages_ran_in_the_cpu_partition_without_a_gpu(ran):
    cpu_jobs = {key: recs[0] for key, recs in ran["jobs"].items() if key[0] not in GPU_STAGES}
    assert {k[0] for k in cpu_jobs} == {"collect", "cutout", "resize", "split", "derive", "summary", "survey", "survey_score"}
    for key, rec in cpu_jobs.items():
        assert rec["Partition"] == "cpu", (key, rec["Partition"])
        assert "TresPerNode" not in rec and "TresPerJob" not in rec, key
        assert rec.get("JOB_GRES") == "(null)", (key, rec.get("JOB_GRES"))


def test_memory_runtime_and_cpus_are_the_profiles(ran):
    prof = profile()
    default = prof["default-resources"]
    for (rule, wildcard), [rec] in ran["jobs"].items():
        want = {**default, **prof["set-resources"].get(rule, {})}
        assert mem_mb(rec) == want["mem_mb"], (rule, rec["MinMemoryNode"])
        assert minutes(rec["TimeLimit"]) == want["runtime"], (rule, rec["TimeLimit"])
        assert int(rec["NumCPUs"]) == prof["set-threads"].get(rule, 1), (rule, rec["NumCPUs"])


def test_the_profile_sends_every_gpu_stage_to_the_gpu_partition():
    """Static: every rule that declares resources gpu=1 (the CAM stages too, absent from the run) is mapped."""
    rules = "".join(p.read_text() for p in (REPO / "workflow/rules").glob("*.smk"))
    declared = set(re.findall(r"^rule (\w+):(?:(?!^rule ).)*?^\s+gpu=1,", rules, flags=re.M | re.S))
    assert declared == GPU_STAGES
    for rule in declared:
        assert profile()["set-resources"][rule]["slurm_partition"] == "gpu", rule
        assert profile()["set-resources"][rule]["gres"] == "gpu:1", rule


def test_outputs_exist(ran):
    ws = ran["ws"]
    for d in DATASETS:
        assert (ws / f"data/splits/{d}.json").is_file() and (ws / f"data/reference/{d}").is_dir()
    assert len(list((ws / f"data/samples/{MODEL}/images").glob("*.png"))) == 6
    for path in (f"metrics/models/{MODEL}.json", f"metrics/compare/{PAIR}.json", "metrics/summary.json", "metrics/table.md"):
        assert (ws / path).is_file(), path
    assert not list(ws.rglob(".*.partial"))


def test_stop_leaves_no_daemon_running(cluster, ran):
    """Last in the file: stop the cluster and check nothing it started runs (the fixture's stop is then a no-op)."""
    started = cluster.started_pids()
    assert set(DAEMONS) <= set(started), started
    assert cluster.stop() == {}
    for name in DAEMONS:
        assert started[name] not in pids_named(name), f"{name} (pid {started[name]}) still runs"
    if "munged" in started:
        assert started["munged"] not in pids_named("munged")
    assert not Path("/etc/slurm/slurm.conf").is_symlink() or not str(os.readlink("/etc/slurm/slurm.conf")).startswith(
        str(cluster.state)
    )
