"""The scale-out recipes in examples/ (GNU parallel on one host and over "ssh", xargs --part, make,
a Slurm array, Spark) build complete, correct datasets: every input row in the metadata exactly once
with the key of its input position, every success's bytes as served, every shard with its stats."""

import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
from collections import Counter

import fsspec
import pyarrow.parquet as pq
import pytest

from any2dataset.shard import ShardOptions, shard
from conftest import ROOT, command_env, default_signals, run_pipeline
from servers import body_for

EXAMPLES = ROOT / "examples"
ROWS = 40

needs_parallel = pytest.mark.skipif(not shutil.which("parallel"), reason="GNU parallel is not installed")
needs_make = pytest.mark.skipif(not shutil.which("make"), reason="make is not installed")


def write_url_list(path, http_server, name, special=None):
    """ROWS rows `url,caption` on the fault server: every 9th a 404, row 17 without a URL.
    `special` maps a row number to a query string of faults for that row."""
    rows = ["url,caption"]
    for i in range(ROWS):
        query = f"size={200 + 53 * i}"
        if i % 9 == 4:
            query += "&status=404"
        query += (special or {}).get(i, "")
        url = "" if i == 17 else f"{http_server.base}/scale/{name}/{i}.bin?{query}"
        rows.append(f"{url},row {i}")
    path.write_text("\n".join(rows) + "\n")
    return path


def expected_rows(http_server, name, per_shard, failures=None):
    """caption -> (key, error_kind or None, payload bytes or None), as the recipes must write them."""
    failures = dict(failures or {})
    rows = []
    for i in range(ROWS):
        url = "" if i == 17 else f"{http_server.base}/scale/{name}/{i}.bin"
        rows.append({"url": url, "caption": f"row {i}"})
    expected = {}
    for i, record in enumerate(shard(rows, ShardOptions(number_sample_per_shard=per_shard))):
        error = failures.get(i) or ("invalid_url" if i == 17 else "http_4xx" if i % 9 == 4 else None)
        payload = None if error else body_for(f"/scale/{name}/{i}.bin", 200 + 53 * i)
        expected[record["caption"]] = (record["key"], error, payload)
    return expected


def check_dataset(out, expected, per_shard, env=None):
    """The dataset in `out` (a local folder or s3://...) holds exactly `expected`."""
    fs, root = fsspec.core.url_to_fs(str(out))
    shards = -(-ROWS // per_shard)
    names = sorted(p.rsplit("/", 1)[-1] for p in fs.ls(root, detail=False))
    assert not [n for n in names if n.startswith(".")], names  # no temporary leftovers
    assert names == sorted(f"{s:05d}{suffix}" for s in range(shards)
                           for suffix in (".tar", ".parquet", "_stats.json"))
    rows, payloads = [], {}
    for s in range(shards):
        with fs.open(f"{root}/{s:05d}.parquet", "rb") as f:
            shard_rows = pq.read_table(f).to_pylist()
        with fs.open(f"{root}/{s:05d}_stats.json", "rb") as f:
            stats = json.load(f)
        assert stats["count"] == len(shard_rows) == min(per_shard, ROWS - s * per_shard)
        assert stats["successes"] == sum(r["status"] == "success" for r in shard_rows)
        assert {r["shard"] for r in shard_rows} == {s}
        rows += shard_rows
        with fs.open(f"{root}/{s:05d}.tar", "rb") as f:
            with tarfile.open(fileobj=io.BytesIO(f.read())) as tar:
                for member in tar.getmembers():
                    key, ext = member.name.split(".", 1)
                    if ext not in ("json", "txt"):
                        assert key not in payloads, f"{key} twice in the tars"
                        payloads[key] = tar.extractfile(member).read()
    assert sorted(r["caption"] for r in rows) == sorted(expected)  # every input row exactly once
    for row in rows:
        key, error, payload = expected[row["caption"]]
        assert row["key"] == key, row["caption"]
        if error:
            assert (row["status"], row["error_kind"]) == ("failed_to_download", error), row
            assert key not in payloads
        else:
            assert row["status"] == "success", row
            assert payloads[key] == payload, f"{key}: not the bytes the server sent"
    assert len(payloads) == sum(1 for _, error, _ in expected.values() if not error)

    report = run_pipeline(f"a2d-stats --json {out}", ROOT, env=env)
    assert report.returncode == 0, report.stderr.decode()
    summary = json.loads(report.stdout)
    assert summary["records"] == ROWS
    assert summary["shards"] == {"complete": shards, "incomplete": [], "missing": []}


def mtimes(folder, shard_ids):
    return {p.name: p.stat().st_mtime_ns for s in shard_ids for p in folder.glob(f"{s:05d}[._]*")}


def run_example(args, cwd, env=None, timeout=90, unset=()):
    environment = command_env(env)
    for name in unset:  # as on CI, which runs without SHELL
        environment.pop(name, None)
    return subprocess.run(["bash", *map(str, args)], cwd=cwd, env=environment, capture_output=True,
                          timeout=timeout)


@needs_parallel
def test_parallel_one_host_joblog_reruns_only_the_failed_shard(http_server, tmp_path):
    urls = write_url_list(tmp_path / "urls.csv", http_server, "one-host")
    out = tmp_path / "out"
    # An a2d-fetch that fails once on shard 00002's file, before reading it (as a crash would).
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    flaky = fake_bin / "a2d-fetch"
    flaky.write_text(f"""#!/usr/bin/env bash
for arg in "$@"; do
    if [[ $arg == *00002.jsonl && ! -e {tmp_path}/failed-once ]]; then
        touch {tmp_path}/failed-once; echo "flaky a2d-fetch: failing" >&2; exit 1
    fi
done
exec {ROOT}/bin/a2d-fetch "$@"
""")
    flaky.chmod(0o755)
    env = {"PATH": f"{fake_bin}{os.pathsep}{command_env()['PATH']}", "PER_SHARD": "6", "JOBS": "3"}

    first = run_example([EXAMPLES / "parallel_one_host.sh", urls, out], tmp_path, env)
    assert first.returncode == 1, first.stderr.decode()
    assert b"run the same command again" in first.stderr
    joblog = (tmp_path / "out.jobs" / "joblog").read_text().splitlines()
    exits = {line.split("\t")[-1].rsplit("/", 1)[-1]: int(line.split("\t")[6]) for line in joblog[1:]}
    assert exits == {f"{s:05d}.jsonl": int(s == 2) for s in range(7)}
    assert sorted(p.name for p in out.glob("*_stats.json")) == [f"{s:05d}_stats.json" for s in (0, 1, 3, 4, 5, 6)]
    before = mtimes(out, (0, 1, 3, 4, 5, 6))

    second = run_example([EXAMPLES / "parallel_one_host.sh", urls, out], tmp_path, env)
    assert second.returncode == 0, second.stderr.decode()
    assert mtimes(out, (0, 1, 3, 4, 5, 6)) == before  # the shards that succeeded were not redone
    rerun = (tmp_path / "out.jobs" / "joblog").read_text().splitlines()[len(joblog):]
    assert [line.split("\t")[-1].rsplit("/", 1)[-1] for line in rerun] == ["00002.jsonl"]
    assert rerun[0].split("\t")[6] == "0"
    check_dataset(out, expected_rows(http_server, "one-host", 6), 6)


def test_xargs_parts_cover_the_input_once_and_resume(http_server, tmp_path):
    urls = write_url_list(tmp_path / "urls.csv", http_server, "parts")
    out = tmp_path / "out"
    env = {"PER_SHARD": "6", "PARTS": "3"}
    result = run_example([EXAMPLES / "xargs_parts.sh", urls, out], tmp_path, env)
    assert result.returncode == 0, result.stderr.decode()
    written = sorted(int(n) for n in re.findall(rb"a2d-shard: 40 records read, (\d+) written", result.stderr))
    assert written == [12, 12, 16]  # three pipelines: shards 0,3,6 (16 rows), 1,4 and 2,5
    check_dataset(out, expected_rows(http_server, "parts", 6), 6)

    for path in out.glob("00004[._]*"):  # lose one shard: running again redoes it alone
        path.unlink()
    before = mtimes(out, (0, 1, 2, 3, 5, 6))
    again = run_example([EXAMPLES / "xargs_parts.sh", urls, out], tmp_path, env)
    assert again.returncode == 0, again.stderr.decode()
    assert mtimes(out, (0, 1, 2, 3, 5, 6)) == before
    assert b"a2d-write: 1 shards, 6 rows" in again.stderr
    check_dataset(out, expected_rows(http_server, "parts", 6), 6)


def joblog_hosts(path):
    lines = path.read_text().splitlines()[1:]
    assert lines and all(line.split("\t")[6] == "0" for line in lines), lines
    return Counter(line.split("\t")[1] for line in lines)


@needs_parallel
def test_parallel_many_hosts_over_ssh_into_a_shared_folder(http_server, tmp_path):
    urls = write_url_list(tmp_path / "urls.csv", http_server, "hosts")
    # hostC is broken (any2dataset is not on its PATH): its jobs fail and go to the other hosts.
    ssh = tmp_path / "ssh.sh"
    ssh.write_text(f"""#!/usr/bin/env bash
for arg in "$@"; do
    if [ "$arg" = hostC ]; then echo "$*" >> {tmp_path}/hostC.log; export PATH=/usr/bin:/bin; fi
done
exec {EXAMPLES / "local_ssh.sh"} "$@"
""")
    ssh.chmod(0o755)
    env = {"SSH": str(ssh), "HOSTS": "2/hostA,2/hostB,1/hostC", "PER_SHARD": "5"}
    result = run_example([EXAMPLES / "parallel_many_hosts.sh", urls, "out"], tmp_path, env, unset=["SHELL"])
    assert result.returncode == 0, result.stderr.decode()
    assert (tmp_path / "hostC.log").exists()  # hostC was given jobs...
    hosts = joblog_hosts(tmp_path / "out.joblog")  # ...but the shards were all written by the others
    assert set(hosts) == {"hostA", "hostB"} and sum(hosts.values()) == 8  # one job per shard
    assert b"Warning" not in result.stderr  # (parallel warns when a shard does not fit in --block)
    check_dataset(tmp_path / "out", expected_rows(http_server, "hosts", 5), 5)


@needs_parallel
def test_parallel_many_hosts_from_and_to_s3(http_server, s3, s3_server, tmp_path):
    urls = write_url_list(tmp_path / "urls.csv", http_server, "hosts-s3")
    s3.put(str(urls), "test-bucket/lists/urls.csv")
    env = dict(s3_server.env, SSH=str(EXAMPLES / "local_ssh.sh"), HOSTS="2/hostA,2/hostB", PER_SHARD="5")
    result = run_example([EXAMPLES / "parallel_many_hosts.sh", "s3://test-bucket/lists/urls.csv",
                          "s3://test-bucket/out"], tmp_path, env)
    assert result.returncode == 0, result.stderr.decode()
    assert set(joblog_hosts(tmp_path / "out.joblog")) == {"hostA", "hostB"}
    check_dataset("s3://test-bucket/out", expected_rows(http_server, "hosts-s3", 5), 5, env=s3_server.env)

    again = run_example([EXAMPLES / "parallel_many_hosts.sh", "s3://test-bucket/lists/urls.csv",
                         "s3://test-bucket/out"], tmp_path, env)  # nothing left to do
    assert again.returncode == 0, again.stderr.decode()
    assert b"8 finished shard(s)" in again.stderr
    assert (tmp_path / "out.joblog").read_text().count("\n") == 1  # no job ran


@needs_make
def test_makefile_builds_only_missing_shards_after_an_interruption(http_server, tmp_path):
    # Row 23 (shard 3) answers after 30 s: make is interrupted while it waits.
    write_url_list(tmp_path / "urls.csv", http_server, "make", special={23: "&delay=30"})
    make = ["make", "-f", str(EXAMPLES / "Makefile"), "-j", "3", "URLS=urls.csv", "OUT=out", "PER_SHARD=6"]
    out = tmp_path / "out"
    first = subprocess.Popen([*make, "FETCH_OPTS=--timeout 60 --deadline 60"], cwd=tmp_path, env=command_env(),
                             start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             preexec_fn=default_signals)
    # make echoes a recipe's last line (`test -e TARGET`) once a2d-fetch | a2d-write is done.
    pending = {f"test -e out/{s:05d}_stats.json" for s in (0, 1, 2, 4, 5, 6)}
    watchdog = threading.Timer(60, os.killpg, (first.pid, signal.SIGKILL))  # never hang the suite
    watchdog.start()
    for line in first.stdout:
        pending.discard(line.decode().strip())
        if not pending:
            break
    time.sleep(0.3)  # (make deletes the target of a recipe still running when interrupted)
    os.killpg(first.pid, signal.SIGINT)  # Ctrl-C
    first.communicate(timeout=30)
    watchdog.cancel()
    assert first.returncode != 0 and not pending
    assert sorted(p.name for p in out.glob("*_stats.json")) == [f"{s:05d}_stats.json" for s in (0, 1, 2, 4, 5, 6)]
    assert not list(out.glob("00003*"))  # nothing of the interrupted shard under a final name
    before = mtimes(out, (0, 1, 2, 4, 5, 6))

    # Again, with a short timeout: row 23 now fails as a timeout, and only shard 3 is built.
    second = subprocess.run([*make, "FETCH_OPTS=--timeout 1 --retries 0"], cwd=tmp_path, env=command_env(),
                            capture_output=True, timeout=60)
    assert second.returncode == 0, second.stderr.decode()
    assert re.findall(rb"a2d-fetch .*?(\S+\.jsonl)", second.stdout) == [b"out.shards/00003.jsonl"]
    assert mtimes(out, (0, 1, 2, 4, 5, 6)) == before
    expected = expected_rows(http_server, "make", 6, failures={23: "timeout"})
    check_dataset(out, expected, 6)

    for path in out.glob("00005[._]*"):  # a lost shard is rebuilt alone
        path.unlink()
    before = mtimes(out, (0, 1, 2, 3, 4, 6))
    third = subprocess.run(make, cwd=tmp_path, env=command_env(), capture_output=True, timeout=60)
    assert third.returncode == 0, third.stderr.decode()
    assert re.findall(rb"a2d-fetch .*?(\S+\.jsonl)", third.stdout) == [b"out.shards/00005.jsonl"]
    assert mtimes(out, (0, 1, 2, 3, 4, 6)) == before
    check_dataset(out, expected, 6)
    idle = subprocess.run(make, cwd=tmp_path, env=command_env(), capture_output=True, timeout=60)
    assert b"Nothing to be done" in idle.stdout


def test_slurm_array_tasks_cover_the_input_once(http_server, tmp_path):
    script = EXAMPLES / "slurm_array.sbatch"
    array = re.search(r"^#SBATCH --array=0-(\d+)$", script.read_text(), re.MULTILINE)
    count = int(array.group(1)) + 1
    write_url_list(tmp_path / "urls.csv", http_server, "slurm")
    tasks = [subprocess.Popen(["bash", str(script), "urls.csv", "out"], cwd=tmp_path, stderr=subprocess.PIPE,
                              env=command_env({"SLURM_ARRAY_TASK_ID": str(i), "SLURM_ARRAY_TASK_COUNT": str(count),
                                               "SLURM_ARRAY_TASK_MIN": "0", "SLURM_CPUS_PER_TASK": "1",
                                               "PER_SHARD": "5"}))
             for i in range(count)]  # as Slurm would start them: all at once
    for i, task in enumerate(tasks):
        _, stderr = task.communicate(timeout=90)
        assert task.returncode == 0, stderr.decode()
        assert f"task {i} of {count}".encode() in stderr
        assert b"a2d-write: 1 shards, 5 rows" in stderr  # 8 shards of 5 rows: one each
    check_dataset(tmp_path / "out", expected_rows(http_server, "slurm", 5), 5)


def test_spark_pipe_in_local_mode(http_server, tmp_path):
    pytest.importorskip("pyspark")
    if not shutil.which("java"):
        pytest.skip("Spark needs Java")
    write_url_list(tmp_path / "urls.csv", http_server, "spark")
    env = command_env({"SPARK_LOCAL_IP": "127.0.0.1",
                       "PYSPARK_SUBMIT_ARGS": "--conf spark.ui.enabled=false pyspark-shell"})
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "spark_pipe.py"), "--master", "local[2]",
         "--per-shard", "6", "--partitions", "3", "urls.csv", "out"],
        cwd=tmp_path, env=env, capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    # Three partitions, whole shards each: 0,3,6 (16 rows), 1,4 and 2,5 (12 rows).
    assert sorted(re.findall(rb"a2d-write: (\d+) shards, (\d+) rows", result.stderr)) == [
        (b"2", b"12"), (b"2", b"12"), (b"3", b"16")]
    check_dataset(tmp_path / "out", expected_rows(http_server, "spark", 6), 6)
