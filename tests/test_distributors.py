"""Ray and Spark: the Ray recipe (examples/ray_parts.py) and download(distributor="ray"|"pyspark")
build the same complete dataset as the other recipes and multiprocessing, and retry a failed task.
One local Ray instance serves the module (the recipe joins it through RAY_ADDRESS)."""

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile

import fsspec
import pyarrow.parquet as pq
import pytest

import any2dataset
from any2dataset import distribute
from any2dataset.all_in_one import img2dataset_plan
from any2dataset.errors import MissingExtra, WorkerFailed
from conftest import command_env
from test_scale_out import EXAMPLES, ROOT, check_dataset, expected_rows, mtimes, write_url_list
from test_video2dataset_e2e import config as video_config
from test_video2dataset_e2e import rows_for, video_server, write_list

ray = pytest.importorskip("ray")
videos = video_server  # that module's fixture, served to this one's tests as `videos`
needs_java = pytest.mark.skipif(not shutil.which("java"), reason="Spark needs Java")
PER_SHARD = 6
# Columns that differ from run to run whoever runs the parts.
TIMINGS = {"fetch_seconds", "download_seconds", "subsample_seconds", "duration"}


@pytest.fixture(scope="module")
def ray_address():
    context = ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield context.address_info["gcs_address"]
    ray.shutdown()


def download_arguments(urls, out, **more):
    return dict(url_list=str(urls), output_folder=str(out), input_format="csv", caption_col="caption",
                output_format="webdataset", disable_all_reencoding=True, all_columns=True,
                number_sample_per_shard=PER_SHARD, processes_count=3, thread_count=8, quiet=True, **more)


def dataset(out):
    """Rows (without timings) and payloads by key: what two runs must agree on."""
    fs, root = fsspec.core.url_to_fs(str(out))
    rows, payloads = [], {}
    for path in sorted(fs.glob(f"{root}/*.parquet")):
        rows += [{k: v for k, v in row.items() if k not in TIMINGS} for row in pq.read_table(path).to_pylist()]
        with tarfile.open(fileobj=io.BytesIO(fs.cat(path[:-len(".parquet")] + ".tar"))) as tar:
            for member in tar.getmembers():
                data = tar.extractfile(member).read()
                if member.name.endswith(".json"):  # the row again, timings and all
                    data = {k: v for k, v in json.loads(data).items() if k not in TIMINGS}
                payloads[member.name] = data
    return sorted(rows, key=lambda row: row["key"]), payloads


@pytest.fixture(scope="module")
def url_list_and_reference(http_server, tmp_path_factory):
    """The URL list and its dataset as multiprocessing builds it."""
    folder = tmp_path_factory.mktemp("reference")
    urls = write_url_list(folder / "urls.csv", http_server, "distributors")
    any2dataset.download(**download_arguments(urls, folder / "out"))
    check_dataset(folder / "out", expected_rows(http_server, "distributors", PER_SHARD), PER_SHARD)
    return urls, dataset(folder / "out")


def test_download_on_ray_builds_the_multiprocessing_dataset(ray_address, url_list_and_reference, tmp_path):
    urls, reference = url_list_and_reference
    report = any2dataset.download(**download_arguments(urls, tmp_path / "out", distributor="ray"))
    assert report["records"] == 40
    assert dataset(tmp_path / "out") == reference


@needs_java
def test_download_on_spark_builds_the_multiprocessing_dataset(url_list_and_reference, tmp_path, monkeypatch):
    pytest.importorskip("pyspark")
    monkeypatch.setenv("SPARK_LOCAL_IP", "127.0.0.1")
    monkeypatch.setenv("PYSPARK_SUBMIT_ARGS", "--conf spark.ui.enabled=false pyspark-shell")
    urls, reference = url_list_and_reference
    any2dataset.download(**download_arguments(urls, tmp_path / "out", distributor="pyspark"))
    assert dataset(tmp_path / "out") == reference


def test_a_killed_ray_task_is_retried_and_its_part_finished(ray_address, url_list_and_reference, tmp_path):
    urls, reference = url_list_and_reference
    marker = tmp_path / "killed-once"

    def dies_once(plan, part, parts, quiet, environment):  # (a closure: Ray sends it by value)
        if part == 1 and not marker.exists():
            marker.touch()
            os._exit(9)  # the worker process dies, as on a lost node
        return distribute.run_one_part(plan, part, parts, quiet, environment)

    plan = img2dataset_plan(**{k: v for k, v in download_arguments(urls, tmp_path / "out").items() if k != "quiet"})
    distribute.run_on_ray(plan, 3, quiet=True, task=dies_once)
    assert marker.exists()
    assert dataset(tmp_path / "out") == reference


@needs_java
def test_a_failing_spark_task_is_retried(url_list_and_reference, tmp_path, monkeypatch):
    pytest.importorskip("pyspark")
    monkeypatch.setenv("SPARK_LOCAL_IP", "127.0.0.1")
    monkeypatch.setenv("PYSPARK_SUBMIT_ARGS", "--conf spark.ui.enabled=false pyspark-shell")
    urls, reference = url_list_and_reference
    marker = tmp_path / "failed-once"

    def fails_once(plan, part, parts, quiet, environment):
        if part == 2 and not marker.exists():
            marker.touch()
            raise OSError("the output folder went away for a moment")
        return distribute.run_one_part(plan, part, parts, quiet, environment)

    plan = img2dataset_plan(**{k: v for k, v in download_arguments(urls, tmp_path / "out").items() if k != "quiet"})
    distribute.run_on_spark(plan, 3, quiet=True, task=fails_once)
    assert marker.exists()
    assert dataset(tmp_path / "out") == reference

    marker.unlink()  # with max_shard_retry=0 the same failure ends the run
    plan = img2dataset_plan(**{k: v for k, v in download_arguments(urls, tmp_path / "again").items()
                               if k != "quiet"}, max_shard_retry=0)
    with pytest.raises(WorkerFailed, match="a Spark task failed after 0 retries"):
        distribute.run_on_spark(plan, 3, quiet=True, task=fails_once)


def test_max_shard_retry_sets_the_ray_task_retries(ray_address, url_list_and_reference, tmp_path):
    urls, _ = url_list_and_reference
    marker = tmp_path / "killed-once"

    def dies_once(plan, part, parts, quiet, environment):
        if part == 0 and not marker.exists():
            marker.touch()
            os._exit(9)
        return distribute.run_one_part(plan, part, parts, quiet, environment)

    arguments = {k: v for k, v in download_arguments(urls, tmp_path / "out").items() if k != "quiet"}
    plan = img2dataset_plan(**arguments, max_shard_retry=0)
    with pytest.raises(WorkerFailed, match=r"part 0/3 \(Ray task\) failed after 0 retries"):
        distribute.run_on_ray(plan, 3, quiet=True, task=dies_once)


@needs_java
@pytest.mark.skipif(not shutil.which("ffmpeg"), reason="video2dataset() probes videos with ffmpeg")
def test_video2dataset_on_spark_builds_the_multiprocessing_dataset(videos, tmp_path, monkeypatch):
    """video2dataset's `distribution.distributor: pyspark` runs the parts as Spark tasks."""
    pytest.importorskip("pyspark")
    monkeypatch.setenv("SPARK_LOCAL_IP", "127.0.0.1")
    monkeypatch.setenv("PYSPARK_SUBMIT_ARGS", "--conf spark.ui.enabled=false pyspark-shell")
    write_list(tmp_path / "urls.csv", "csv", rows_for(videos) + [{"url": f"{videos}/words.mp4",
                                                                "caption": "not a video", "lang": "l0"}])
    built = {}
    for distributor, processes in (("multiprocessing", 1), ("pyspark", 2)):
        chosen = video_config(2)
        chosen["distribution"].update(processes_count=processes, distributor=distributor)
        any2dataset.video2dataset(url_list=str(tmp_path / "urls.csv"), output_folder=str(tmp_path / distributor),
                                  input_format="csv", caption_col="caption", output_format="webdataset",
                                  config=chosen, quiet=True,
                                  tmp_dir=str(tmp_path))
        built[distributor] = dataset(tmp_path / distributor)
    rows, payloads = built["pyspark"]
    assert len(rows) == 6 and sum(row["status"] == "success" for row in rows) == 5
    assert sum(name.endswith(".mp4") for name in payloads) == 5
    assert built["pyspark"] == built["multiprocessing"]


def test_a_missing_engine_names_its_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now fails
    (tmp_path / "urls.txt").write_text("http://127.0.0.1:9/a\n")
    with pytest.raises(MissingExtra, match=r"any2dataset\[ray\]"):
        any2dataset.download(url_list=str(tmp_path / "urls.txt"), output_folder=str(tmp_path / "out"),
                             distributor="ray", disable_all_reencoding=True)


def run_recipe(urls, out, env):
    return subprocess.run([sys.executable, str(EXAMPLES / "ray_parts.py"), str(urls), str(out)], cwd=out.parent,
                          env=command_env(env), capture_output=True, timeout=120)


def test_ray_recipe_covers_the_input_once_retries_and_resumes(ray_address, http_server, tmp_path):
    urls = write_url_list(tmp_path / "urls.csv", http_server, "ray")
    out = tmp_path / "out"
    # An a2d-fetch that fails part 1's first attempt (as a crash would): Ray retries the task.
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    env = {"RAY_ADDRESS": ray_address, "PER_SHARD": str(PER_SHARD), "PARTS": "3",
           "PATH": f"{fake_bin}{os.pathsep}{command_env()['PATH']}"}
    (fake_bin / "a2d-fetch").write_text(f"""#!/usr/bin/env bash
IFS= read -r first  # (byte by byte from a pipe: the rest is left for a2d-fetch); part 1 holds shards 1, 4
if [[ $first == *'"shard":1'* && ! -e {tmp_path}/failed-once ]]; then
    touch {tmp_path}/failed-once; echo "flaky a2d-fetch: failing" >&2; exit 1
fi
{{ printf '%s\\n' "$first"; cat; }} | exec {ROOT}/bin/a2d-fetch "$@"
""")
    (fake_bin / "a2d-fetch").chmod(0o755)
    first = run_recipe(urls, out, env)
    assert first.returncode == 0, first.stderr.decode()[-3000:]
    assert (tmp_path / "failed-once").exists()
    check_dataset(out, expected_rows(http_server, "ray", PER_SHARD), PER_SHARD)

    for path in out.glob("00004[._]*"):  # lose one shard: running again redoes it alone
        path.unlink()
    before = mtimes(out, (0, 1, 2, 3, 5, 6))
    again = run_recipe(urls, out, env)
    assert again.returncode == 0, again.stderr.decode()[-3000:]
    assert mtimes(out, (0, 1, 2, 3, 5, 6)) == before
    check_dataset(out, expected_rows(http_server, "ray", PER_SHARD), PER_SHARD)
