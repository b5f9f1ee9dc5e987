"""Sharing the artifact cache through a DVC remote: push from one clone, pull into another, nothing to rerun.

S3 is served by moto on 127.0.0.1 (the same client code, dvc-s3 and botocore, talks to AWS, MinIO or
Ceph through `endpointurl`); the shared-folder remote needs no server.  The pipeline is the tiny one of
`tiny_workspace.py`, run once by `dvc repro` in the first clone.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import git, load_yaml
from test_pipeline import BIN, ENV, sh
from tiny_workspace import commit, lock_outs, tiny_workspace, tree_digest

pytestmark = pytest.mark.slow

BUCKET = "animegen"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def isolated_env(tmp: Path) -> dict[str, str]:
    """ENV without any AWS credentials or config of this machine: only what a test passes reaches boto."""
    env = {k: v for k, v in ENV.items() if not k.startswith("AWS_")}
    env.update(AWS_CONFIG_FILE=str(tmp / "no-aws-config"), AWS_SHARED_CREDENTIALS_FILE=str(tmp / "no-aws-credentials"))
    return env


def run(cwd: Path, env: dict, *cmd: str) -> str:
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert r.returncode == 0, f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r.stdout + r.stderr


def cache_objects(ws: Path) -> set[str]:
    """Content-addressed objects in a workspace's DVC cache, as ``xx/yyyy...``."""
    root = ws / ".dvc/cache/files/md5"
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def needed_objects(ws: Path) -> set[str]:
    """The cache objects that dvc.lock's outputs (data/ and metrics/, all cached) are made of."""
    lock = load_yaml(ws / "dvc.lock")
    md5s = {o["md5"] for s in lock["stages"].values() for o in s.get("outs", [])}
    objects = set()
    for md5 in md5s:
        objects.add(f"{md5[:2]}/{md5[2:]}")
        if md5.endswith(".dir"):
            entries = json.loads((ws / ".dvc/cache/files/md5" / md5[:2] / md5[2:]).read_text())
            objects |= {f"{e['md5'][:2]}/{e['md5'][2:]}" for e in entries}
    return objects


def pushed(out: str) -> int:
    match = re.search(r"^(\d+) files? pushed", out, re.M)
    assert match, out
    return int(match.group(1))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def s3(tmp_path: Path):
    """A moto S3 server on 127.0.0.1 with an empty bucket; stopped by PID at the end, and checked gone."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(tmp_path / "moto.log", "w")
    # the real interpreter, not a console-script shim: the PID kept is the server's own
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"moto exited ({proc.returncode}): {(tmp_path / 'moto.log').read_text()}"
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "moto did not answer within 60 s"
            time.sleep(0.2)
        # DVC does not create buckets: without this, push fails with NoSuchBucket
        with urllib.request.urlopen(urllib.request.Request(f"{url}/{BUCKET}", method="PUT"), timeout=10) as r:
            assert r.status == 200
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
        log.close()
    assert proc.returncode is not None and not Path(f"/proc/{proc.pid}").exists(), "moto is still running"
    assert not port_open(port), f"something still listens on {port}"


def bucket_objects(url: str, prefix: str) -> set[str]:
    import boto3  # noqa: PLC0415  (installed with moto[server], the dev extra)

    client = boto3.client("s3", endpoint_url=url, **{k.lower(): v for k, v in CREDENTIALS.items() if "KEY" in k},
                          region_name=CREDENTIALS["AWS_DEFAULT_REGION"])  # fmt: skip
    keys = set()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        keys |= {o["Key"].removeprefix(prefix) for o in page.get("Contents", [])}
    return keys


@pytest.fixture(scope="module")
def first(tmp_path_factory) -> Path:
    """The first clone: the tiny pipeline run by `dvc repro`, its dvc.lock committed (every output is cached)."""
    ws = tiny_workspace(tmp_path_factory.mktemp("remote") / "first")
    stages = set(sh(ws, "dvc", "stage", "list", "--name-only").stdout.split())
    ran = {line.split("'")[1] for line in sh(ws, "dvc", "repro").stdout.splitlines() if line.startswith("Running stage")}
    assert ran == stages and "summary" in ran and "train@dcgan" in ran
    git(ws, "add", "-A")
    commit(ws, "results of dvc repro")
    assert git(ws, "status", "--porcelain").strip() == ""
    return ws


def assert_same_outputs_and_nothing_to_rerun(first: Path, second: Path, env: dict) -> None:
    outs = lock_outs(first)  # every output, data/ and metrics/, comes from the remote
    assert {"data/raw/face_a_early", "data/models/dcgan", "data/samples/dcgan", "metrics/summary.json"} <= set(outs)
    for rel in outs:
        theirs, ours = tree_digest(first, rel), tree_digest(second, rel)
        assert ours and ours == theirs, rel
    assert "Data and pipelines are up to date." in run(second, env, "dvc", "status")
    stages = set(run(second, env, "dvc", "stage", "list", "--name-only").split())
    out = run(second, env, "dvc", "repro")
    assert "Running stage" not in out, out
    skipped = {line.split("'")[1] for line in out.splitlines() if line.endswith("didn't change, skipping")}
    assert skipped == stages and "Data and pipelines are up to date." in out
    assert git(second, "status", "--porcelain").strip() == ""  # dvc.lock unchanged, outputs git-ignored


def test_s3_remote_push_from_one_clone_pull_into_another(first: Path, s3: str, tmp_path: Path):
    env = isolated_env(tmp_path)
    # the project's remote settings are committed; the credentials stay in .dvc/config.local (git-ignored)
    run(first, env, "dvc", "remote", "add", "-d", "store", f"s3://{BUCKET}/animegen")
    run(first, env, "dvc", "remote", "modify", "store", "endpointurl", s3)
    run(first, env, "dvc", "remote", "modify", "--local", "store", "access_key_id", CREDENTIALS["AWS_ACCESS_KEY_ID"])
    run(first, env, "dvc", "remote", "modify", "--local", "store", "secret_access_key", CREDENTIALS["AWS_SECRET_ACCESS_KEY"])
    git(first, "add", ".dvc/config")
    commit(first, "S3 remote")
    assert git(first, "status", "--porcelain").strip() == ""
    assert "testing" not in git(first, "show", "HEAD:.dvc/config")

    objects = needed_objects(first)
    assert objects <= cache_objects(first)
    assert pushed(run(first, env, "dvc", "push")) == len(objects)
    assert bucket_objects(s3, "animegen/files/md5/") == objects  # all the outputs need, through the S3 API

    second = tmp_path / "second"
    git(tmp_path, "clone", "-q", str(first), str(second))
    assert not (second / ".dvc/config.local").exists() and not (second / "data/models").exists()
    with pytest.raises(AssertionError, match="Unable to locate credentials|NoCredentials"):
        run(second, env, "dvc", "pull")  # the clone has the remote but not the secret
    pulled = run(second, {**env, **CREDENTIALS}, "dvc", "pull")
    assert "files fetched" in pulled, pulled
    assert cache_objects(second) == objects
    assert_same_outputs_and_nothing_to_rerun(first, second, env)


def test_shared_folder_remote(first: Path, tmp_path: Path):
    env = isolated_env(tmp_path)
    shared = tmp_path / "shared-dvc-remote"  # e.g. an NFS mount every machine sees at the same path
    run(first, env, "dvc", "remote", "add", "-d", "shared", str(shared))
    git(first, "add", ".dvc/config")
    commit(first, "shared-folder remote")
    objects = needed_objects(first)
    assert pushed(run(first, env, "dvc", "push")) == len(objects)
    assert {p.relative_to(shared / "files/md5").as_posix() for p in shared.rglob("*") if p.is_file()} == objects

    second = tmp_path / "second"
    git(tmp_path, "clone", "-q", str(first), str(second))
    status = subprocess.run(["dvc", "status", "--json"], cwd=second, env=env, capture_output=True, text=True, check=True)
    assert "data/models/dcgan" in json.dumps(json.loads(status.stdout))  # nothing there before the pull
    # pulled through the helper, which also tells Snakemake: neither tool has anything to rerun
    out = run(second, env, str(BIN / "animegen-sync"), "after-checkout", "main", "--pull")
    assert "Snakemake and DVC both have nothing to do" in out, out
    dry = run(second, env, "snakemake", "-n", "--cores", "1")
    # --touch --forceall: every job has Snakemake metadata, so a later params change is seen
    assert "Nothing to be done" in dry and "missing provenance/metadata" not in dry, dry
    assert_same_outputs_and_nothing_to_rerun(first, second, env)
