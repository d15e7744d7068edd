"""The Kubernetes recipe (examples/kubernetes/indexed-job.yaml), without a cluster: its pod's
command and environment, read from the manifest, run here once per index as the Job controller
starts the pods (JOB_COMPLETION_INDEX set, the Secret's keys and the CPU limit filled in as the
kubelet would), build the whole dataset on S3 (moto, on loopback); a restarted pod rewrites
nothing; a pod killed mid-way and started again completes the dataset."""

import os
import signal
import subprocess
import time

import pytest
import yaml

from conftest import BIN, ROOT, command_env
from servers import serve_folder
from test_scale_out import check_dataset, expected_rows, write_url_list

MANIFEST = ROOT / "examples" / "kubernetes" / "indexed-job.yaml"
PARTS = 2  # the test's N: 40 rows, 5 per shard, 8 shards, 4 per part
PER_SHARD = 5


def the_job() -> dict:
    (job,) = [doc for doc in yaml.safe_load_all(MANIFEST.read_text()) if doc and doc["kind"] == "Job"]
    return job


def the_container() -> dict:
    (container,) = the_job()["spec"]["template"]["spec"]["containers"]
    return container


def pod_env(index: int, settings: dict, secret: dict, home) -> dict:
    """The environment of pod `index`: the manifest's env with `settings` replacing some of its
    values, `secret` as the Secret's data, and the CPU limit; nothing else of this process's
    environment but PATH (to find this checkout's commands) and PYTHONPATH (to import it)."""
    env = {}
    for var in the_container()["env"]:
        name, source = var["name"], var.get("valueFrom", {})
        if "value" in var:
            env[name] = settings.get(name, var["value"])
        elif "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            if ref["key"] in secret:
                env[name] = secret[ref["key"]]
            else:
                assert ref.get("optional"), f"{name}: the Secret has no {ref['key']}"
        elif "resourceFieldRef" in source:
            assert source["resourceFieldRef"]["resource"] == "limits.cpu"
            env[name] = "1"
        else:
            raise AssertionError(f"{name}: a source this test does not fill in: {var}")
    assert set(settings) <= set(env), "settings must be the manifest's own variables"
    env["JOB_COMPLETION_INDEX"] = str(index)  # what makes pod I part I
    env.update(PATH=command_env()["PATH"], PYTHONPATH=os.environ["PYTHONPATH"], HOME=str(home))
    return env


def start_pod(index: int, settings: dict, secret: dict, tmp_path) -> subprocess.Popen:
    container = the_container()
    return subprocess.Popen([*container["command"], *container["args"]], cwd=tmp_path,
                            env=pod_env(index, settings, secret, tmp_path), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)


def finish(pod: subprocess.Popen) -> str:
    _, stderr = pod.communicate(timeout=90)
    assert pod.returncode == 0, stderr.decode()
    return stderr.decode()


@pytest.fixture
def local_cluster(http_server, s3, s3_server, tmp_path):
    """Everything a pod reaches, here: the URL list served over HTTP, a bucket, the Secret."""
    def setup(name, special=None, **more):
        write_url_list(tmp_path / "lists" / "urls.csv", http_server, name, special)
        settings = {"URL_LIST": f"{base}/urls.csv", "OUTPUT_FOLDER": f"s3://test-bucket/{name}",
                    "PARTS": str(PARTS), "PER_SHARD": str(PER_SHARD), "TMPDIR": str(tmp_path / "scratch"),
                    **more}
        return settings, f"test-bucket/{name}"

    (tmp_path / "lists").mkdir()
    (tmp_path / "scratch").mkdir()
    secret = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
              "FSSPEC_S3_ENDPOINT_URL": s3_server.endpoint}
    with serve_folder(tmp_path / "lists") as base:
        yield setup, secret


def objects(s3, prefix) -> dict:
    s3.invalidate_cache()
    return {info["name"]: (info["ETag"], info["LastModified"]) for info in s3.ls(prefix, detail=True)}


def test_the_manifest_runs_part_i_of_n_in_pod_i():
    job, container = the_job(), the_container()
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    values = {var["name"]: var["value"] for var in container["env"] if "value" in var}
    assert int(values["PARTS"]) == spec["completions"] >= spec["parallelism"]
    assert spec["template"]["spec"]["restartPolicy"] == "Never"  # backoffLimitPerIndex requires it
    assert values["OUTPUT_FOLDER"].startswith("s3://")
    script = container["args"][0]
    assert '--part "$JOB_COMPLETION_INDEX/$PARTS"' in script
    assert '--skip-done "$OUTPUT_FOLDER"' in script  # a restarted pod resumes
    assert script.count('"$OUTPUT_FOLDER"') == 2  # --skip-done and a2d-write: the same folder
    assert "$(" not in script  # Kubernetes would expand $(NAME) in args before bash sees them
    secrets = {var["name"] for var in container["env"] if "secretKeyRef" in var.get("valueFrom", {})}
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "FSSPEC_S3_ENDPOINT_URL"} <= secrets
    assert all((BIN / name).exists() for name in ("a2d-read", "a2d-shard", "a2d-fetch", "a2d-write"))


def test_every_index_builds_its_part_and_a_restarted_pod_rewrites_nothing(
        local_cluster, http_server, s3, s3_server, tmp_path):
    setup, secret = local_cluster
    settings, prefix = setup("k8s")
    pods = [start_pod(i, settings, secret, tmp_path) for i in range(PARTS)]  # as the Job starts them
    for i, pod in enumerate(pods):
        stderr = finish(pod)
        assert f"part {i} of {PARTS}" in stderr
        assert "a2d-write: 4 shards, 20 rows" in stderr  # shards i, i + 2, i + 4 and i + 6
    check_dataset(settings["OUTPUT_FOLDER"], expected_rows(http_server, "k8s", PER_SHARD), PER_SHARD,
                  env=s3_server.env)

    before, requests = objects(s3, prefix), len(http_server.requests_for_prefix("/scale/k8s/"))
    stderr = finish(start_pod(1, settings, secret, tmp_path))  # pod 1 again, as after an eviction
    assert "8 finished shard(s)" in stderr and "a2d-write: 0 shards" in stderr
    assert objects(s3, prefix) == before  # nothing rewritten...
    assert len(http_server.requests_for_prefix("/scale/k8s/")) == requests  # ...nor downloaded again


def test_a_pod_killed_mid_way_and_started_again_completes_the_dataset(
        local_cluster, http_server, s3, s3_server, tmp_path):
    setup, secret = local_cluster
    # Row 32 (shard 6, part 0) answers after 30 s: pod 0 is killed while it waits.
    settings, prefix = setup("k8s-kill", special={32: "&delay=30"}, FETCH_OPTS="--timeout 60 --deadline 60")
    pods = [start_pod(i, settings, secret, tmp_path) for i in range(PARTS)]
    finish(pods[1])
    deadline = time.monotonic() + 60
    while f"{prefix}/00004_stats.json" not in objects(s3, prefix):  # its other shards are done
        assert time.monotonic() < deadline and pods[0].poll() is None, "pod 0 never finished shard 4"
        time.sleep(0.2)
    os.killpg(pods[0].pid, signal.SIGKILL)  # the node is lost: no chance to clean up
    pods[0].communicate(timeout=30)
    assert pods[0].returncode == -signal.SIGKILL
    assert not [name for name in objects(s3, prefix) if "00006" in name]  # nothing of shard 6
    before = objects(s3, prefix)

    # The Job starts pod 0 again; with a short timeout, row 32 now fails as a timeout.
    settings["FETCH_OPTS"] = "--timeout 1 --retries 0"
    stderr = finish(start_pod(0, settings, secret, tmp_path))
    assert "7 finished shard(s)" in stderr and "a2d-write: 1 shards, 5 rows" in stderr
    assert {name: stamp for name, stamp in objects(s3, prefix).items() if name in before} == before
    expected = expected_rows(http_server, "k8s-kill", PER_SHARD, failures={32: "timeout"})
    check_dataset(settings["OUTPUT_FOLDER"], expected, PER_SHARD, env=s3_server.env)
