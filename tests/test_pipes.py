"""Real shell pipes: | head, Ctrl-C, a whole pipeline, big records."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pybase64
import webdataset as wds

from conftest import command_env, default_signals
from servers import body_for


def test_read_into_head_ends_quietly(pipeline, tmp_path):
    (tmp_path / "urls.txt").write_text("".join(f"http://127.0.0.1/{i}\n" for i in range(200000)))
    result = pipeline("a2d-read urls.txt | head -1")
    assert result.returncode == 0, result.stderr
    assert orjson.loads(result.stdout) == {"url": "http://127.0.0.1/0"}
    assert result.stderr == b""


def test_fetch_into_head_ends_quietly(pipeline, http_server, tmp_path):
    urls = "".join(http_server.url(f"head/{i}.bin", size=70000) + "\n" for i in range(300))
    (tmp_path / "urls.txt").write_text(urls)
    result = pipeline("a2d-read -q urls.txt | a2d-fetch -j 8 -q | head -c 1000 > /dev/null")
    assert result.returncode == 0, result.stderr
    assert result.stderr == b""


def test_whole_pipeline_over_real_pipes(pipeline, http_server, tmp_path):
    rows = ["url,caption"]
    for i in range(25):
        faults = "&status=404" if i % 5 == 4 else ""
        rows.append(f"{http_server.url(f'pipe/{i}.png', size=70000 + i)}{faults},picture {i}")
    (tmp_path / "urls.csv").write_text("\n".join(rows) + "\n")
    result = pipeline("a2d-read urls.csv | a2d-fetch -j 8 | a2d-write --number-sample-per-shard 10 out")
    assert result.returncode == 0, result.stderr
    assert b"a2d-write: 3 shards, 25 rows, 20 samples written to out" in result.stderr
    samples = list(wds.WebDataset(str(tmp_path / "out" / "0000{0..2}.tar"), shardshuffle=False))
    assert len(samples) == 20
    for sample in samples:
        meta = orjson.loads(sample["json"])
        i = int(meta["caption"].split()[1])
        assert sample["png"] == body_for(f"/pipe/{i}.png", 70000 + i)
    failed = [row for shard in range(3) for row in pq.read_table(tmp_path / "out" / f"0000{shard}.parquet").to_pylist()
              if row["status"] != "success"]
    assert sorted(int(r["caption"].split()[1]) for r in failed) == [4, 9, 14, 19, 24]
    assert {r["error_kind"] for r in failed} == {"http_4xx"}


def test_ctrl_c_exits_130_without_a_traceback(http_server, tmp_path):
    record = orjson.dumps({"url": http_server.url("ctrl-c.bin", stall=1, size=100000)}) + b"\n"
    process = subprocess.Popen(["a2d-fetch", "--timeout", "60"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=command_env(), preexec_fn=default_signals)
    process.stdin.write(record)
    process.stdin.flush()
    deadline = time.monotonic() + 10
    while not http_server.requests_for("ctrl-c.bin") and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=10)
    assert process.returncode == 130
    assert stderr == b"a2d-fetch: interrupted\n"


def test_ctrl_c_in_write_leaves_no_partial_file(tmp_path):
    out = tmp_path / "out"
    process = subprocess.Popen(["a2d-write", str(out)], stdin=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=command_env(), preexec_fn=default_signals)
    for i in range(5):
        process.stdin.write(orjson.dumps({"url": f"u{i}", "status": "success", "files": {"bin": b"x" * 100000}},
                                         default=lambda b: __import__("base64").b64encode(b).decode()) + b"\n")
    process.stdin.flush()
    deadline = time.monotonic() + 10
    while not list(out.glob(".*")) and time.monotonic() < deadline:  # the shard is being written
        time.sleep(0.05)
    assert list(out.glob(".00000.tar.tmp*"))
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=10)
    assert process.returncode == 130 and stderr == b"a2d-write: interrupted\n"
    assert list(out.iterdir()) == []


def test_records_bigger_than_a_pipe_buffer_arrive_intact(pipeline, tmp_path):
    payload = bytes(range(256)) * 4000  # 1 MB, ~1.4 MB as a base64 line
    lines = [orjson.dumps({"key": f"00000000{i}", "status": "success", "files": {"bin": payload}},
                          default=lambda b: __import__("base64").b64encode(b).decode()) + b"\n" for i in range(3)]
    (tmp_path / "in.jsonl").write_bytes(b"".join(lines))
    result = pipeline("cat in.jsonl | a2d-fetch | a2d-fetch | a2d-write out --number-sample-per-shard 3")
    assert result.returncode == 0, result.stderr
    samples = list(wds.WebDataset(str(tmp_path / "out" / "00000.tar"), shardshuffle=False))
    assert [s["bin"] == payload for s in samples] == [True, True, True]


def test_sigterm_flushes_what_was_fetched_and_exits_130(http_server, tmp_path):
    fast = [orjson.dumps({"url": http_server.url(f"term/{i}.bin")}) + b"\n" for i in range(5)]
    stalled = orjson.dumps({"url": http_server.url("term/stall.bin", stall=1, size=100000)}) + b"\n"
    process = subprocess.Popen(["a2d-fetch", "--timeout", "60", "-q"], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=command_env())
    process.stdin.write(b"".join(fast) + stalled)
    process.stdin.flush()
    deadline = time.monotonic() + 10
    while not http_server.requests_for("term/stall.bin") and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=10)
    assert process.returncode == 130 and stderr == b""  # -q: not even the note that it was interrupted
    *done, abort = [orjson.loads(line) for line in stdout.splitlines() if line.strip()]
    assert abort == {"a2d_abort": "a2d-fetch: interrupted"}  # so the next stage does not take it for the end
    assert sorted(r["url"] for r in done) == sorted(orjson.loads(line)["url"] for line in fast)
    assert all(r["status"] == "success" for r in done)


def test_worker_processes_give_every_record_once_in_whole_lines(pipeline, http_server, tmp_path):
    lines = []
    for i in range(400):
        faults = {"status": 404} if i % 9 == 0 else {"size": 20000 + 997 * (i % 50)}
        lines.append(orjson.dumps({"url": http_server.url(f"workers/{i}.bin", **faults), "row": i}) + b"\n")
    (tmp_path / "in.jsonl").write_bytes(b"".join(lines))
    result = pipeline("a2d-fetch -w 3 -j 24 in.jsonl > out.jsonl")
    assert result.returncode == 0, result.stderr
    assert b"a2d-fetch: 400 records: 355 downloaded, 45 failed (http_4xx 45)\n" in result.stderr
    out = [orjson.loads(line) for line in (tmp_path / "out.jsonl").read_bytes().splitlines()]
    assert sorted(r["row"] for r in out) == list(range(400))
    for record in out:
        if record["row"] % 9:
            i = record["row"]
            [payload] = record["files"].values()
            assert pybase64.b64decode(payload) == body_for(f"/workers/{i}.bin", 20000 + 997 * (i % 50))


def test_worker_processes_report_bad_input_at_its_line(pipeline, tmp_path):
    good = b'{"url": "ftp://127.0.0.1/x"}\n'
    (tmp_path / "in.jsonl").write_bytes(good * 100 + b"{broken\n" + good * 5)
    result = pipeline("a2d-fetch -w 2 in.jsonl > out.jsonl")
    assert result.returncode == 3
    assert result.stderr.decode().startswith("a2d-fetch: error: in.jsonl:101: not valid JSON")
    lines = [line for line in (tmp_path / "out.jsonl").read_bytes().splitlines() if line.strip()]
    assert len(lines) == 101  # what came before is kept, then the abort line for the next stage
    assert orjson.loads(lines[-1])["a2d_abort"].startswith("a2d-fetch: error: in.jsonl:101: not valid JSON")
    skipped = pipeline("a2d-fetch -w 2 --on-error skip in.jsonl > out.jsonl")
    assert skipped.returncode == 0 and len((tmp_path / "out.jsonl").read_bytes().splitlines()) == 105


def test_interrupted_children_hear_ctrl_c_when_the_suite_ignores_it(tmp_path):
    """The Ctrl-C tests above start their commands with default_signals: run from a parent that
    ignores SIGINT (as `pytest &` in a script does), the command must still be interrupted."""
    script = (
        "import signal, subprocess, sys, time\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from conftest import default_signals\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)'],\n"
        "                         preexec_fn=default_signals if sys.argv[1] == 'default' else None)\n"
        "time.sleep(0.5)\n"
        "child.send_signal(signal.SIGINT)\n"
        "try:\n"
        "    print(child.wait(timeout=5))\n"
        "except subprocess.TimeoutExpired:\n"
        "    child.kill()\n"
        "    print('ignored')\n"
    )
    ignoring = dict(preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN), capture_output=True, timeout=30)
    inherited = subprocess.run([sys.executable, "-c", script, "inherit"], **ignoring)
    restored = subprocess.run([sys.executable, "-c", script, "default"], **ignoring)
    assert inherited.stdout.strip() == b"ignored"  # the trap the Ctrl-C tests would fall into
    assert restored.stdout.strip() != b"ignored" and restored.returncode == 0, restored.stderr
