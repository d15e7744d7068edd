"""a2d-stats: every number checked against counts recomputed here, on streams, on datasets written
by the real a2d-write (local and on a real S3 server), --tee byte for byte, and the HTML page."""

import base64
import json
import math
import random
import re
from collections import Counter

import duckdb
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from any2dataset import stats as statistics
from any2dataset.commands import stats as stats_command

KINDS = ["http_4xx", "timeout", "dns", "connect"]
MESSAGES = {"http_4xx": "HTTP 404 Not Found", "timeout": "timed out after 10 s", "dns": "no such host",
            "connect": "connection refused"}


def make_records(n, seed=7):
    """Successes of many sizes (some with a `size` field, some with two payloads), failures of
    several kinds and messages, filtered rows and rows without a status."""
    chooser = random.Random(seed)
    records = []
    for i in range(n):
        roll = chooser.random()
        record = {"url": f"http://example.test/{i}", "caption": f"caption {i}"}
        if roll < 0.55:
            size = int(math.exp(chooser.uniform(0, math.log(200_000))))  # 1 B to 200 kB, log-uniform
            payload = bytes(chooser.getrandbits(8) for _ in range(min(size, 64))) * (size // 64 + 1)
            record["status"] = "success"
            record["files"] = {"jpg": base64.b64encode(payload[:size]).decode()}
            if i % 3 == 0:
                record["size"] = size
            elif i % 3 == 1:
                record["files"]["txt2"] = base64.b64encode(b"x" * (i % 5)).decode()
        elif roll < 0.85:
            kind = chooser.choice(KINDS)
            record.update(status="failed_to_download", error_kind=kind,
                          error_message=MESSAGES[kind] if kind != "dns" else f"no such host h{i % 4}.test")
        elif roll < 0.9:
            record.update(status="failed_to_subsample", error_kind="decode_error", error_message="cannot decode")
        elif roll < 0.95:
            record.update(status="filtered", error_message="too small")
        records.append(record)
    return records


def sample_size(record):
    """Recomputed by decoding, not from base64 lengths as a2d-stats does."""
    if "size" in record:
        return record["size"]
    if record.get("files"):
        return sum(len(p) if isinstance(p, bytes) else len(base64.b64decode(p)) for p in record["files"].values())
    return None


def expected(records):
    statuses = Counter(r.get("status", "no_status") for r in records)
    kinds = Counter(r["error_kind"] for r in records if r.get("error_kind"))
    messages = Counter(r["error_message"] for r in records if r.get("error_message") and r.get("status") != "success")
    sizes = sorted(s for s in map(sample_size, records) if s is not None)
    return statuses, kinds, messages, sizes


def nearest_rank(sorted_values, q):
    return sorted_values[max(1, math.ceil(q * len(sorted_values))) - 1]


def check_sizes(size_report, sizes):
    assert size_report["count"] == len(sizes)
    assert size_report["min"] == sizes[0] and size_report["max"] == sizes[-1]
    assert size_report["mean"] == pytest.approx(sum(sizes) / len(sizes), abs=0.05)
    for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
        exact = nearest_rank(sizes, q)
        # Documented bound: the estimate lies in the exact value's quarter-octave bin.
        assert abs(size_report[name] - exact) <= max(0.25 * exact, 0), (name, size_report[name], exact)


def check_stream_report(report, records, top=10):
    statuses, kinds, messages, sizes = expected(records)
    assert report["records"] == len(records)
    assert report["statuses"] == {name: statuses.get(name, 0) for name in statistics.STATUS_NAMES}
    assert report["success_rate"] == round(statuses["success"] / len(records), 4)
    assert report["error_kinds"] == dict(kinds)
    assert list(report["error_kinds"].values()) == sorted(kinds.values(), reverse=True)
    assert report["top_errors"] == [[message, count] for message, count in messages.most_common(top)]
    assert report["untracked_errors"] == 0
    assert report["bytes"] == sum(sizes)
    check_sizes(report["size"], sizes)
    assert sum(count for _, _, count in report["size_histogram"]) == len(sizes)
    for low, high, count in report["size_histogram"]:
        assert count == sum(1 for s in sizes if low <= s < high)


def jsonl(records):
    return b"".join(orjson.dumps(r) + b"\n" for r in records)


# ---------------------------------------------------------------------------- streams


def test_stream_report_matches_counts_recomputed_here(cli):
    records = make_records(400)
    result = cli(stats_command.main, ["--json", "--top", "20"], input=jsonl(records))
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    check_stream_report(report, records, top=20)
    assert report["mode"] == "stream" and report["source"] == "<stdin>"
    assert report["duration"] >= 0 and report["skipped_lines"] == 0
    assert sum(report["arrivals"]["counts"]) == 400
    assert result.stderr == ""


def test_library_tally_passes_records_through_and_counts_them():
    records = make_records(300, seed=3)
    for record in records[::2]:  # in-process, payloads may already be bytes
        if record.get("files"):
            record["files"] = {ext: base64.b64decode(p) for ext, p in record["files"].items()}
    stats = statistics.StreamStats("in-process")
    passed = list(statistics.tally(iter(records), stats))
    assert all(a is b for a, b in zip(passed, records)) and len(passed) == len(records)
    check_stream_report(stats.report(top=50), records, top=50)


def test_memory_stays_bounded_on_a_long_stream():
    now = [0.0]
    stats = statistics.StreamStats(clock=lambda: now[0])
    for i in range(5000):
        now[0] = i * 3.7  # about five hours of arrivals
        stats.add({"status": "failed_to_download", "error_kind": "other", "error_message": f"unique {i}",
                   "size": i})
    stats.finish()
    report = stats.report(top=5)
    assert len(stats.messages) == statistics.MESSAGE_CAP
    assert report["untracked_errors"] == 5000 - statistics.MESSAGE_CAP
    assert sum(count for _, count in report["top_errors"]) == 5
    width, counts = report["arrivals"]["bucket_seconds"], report["arrivals"]["counts"]
    assert len(counts) <= statistics.Timeline.BUCKETS and sum(counts) == 5000
    assert counts == [sum(1 for i in range(5000) if k * width <= i * 3.7 < (k + 1) * width)
                      for k in range(len(counts))]
    assert report["duration"] == pytest.approx(4999 * 3.7, abs=0.01)
    assert report["records_per_second"] == pytest.approx(5000 / (4999 * 3.7), abs=0.1)


def test_text_report_is_aligned_and_has_the_numbers(cli):
    records = make_records(120, seed=5)
    statuses, kinds, messages, sizes = expected(records)
    text = cli(stats_command.main, [], input=jsonl(records)).stdout
    lines = text.splitlines()
    numbers = {line.split()[0]: line.split()[1] for line in lines if line.startswith(("records ", "  "))}
    assert numbers["records"] == "120"
    for status in ("success", "failed_to_download", "failed_to_subsample", "filtered"):
        assert numbers[status] == f"{statuses[status]:,}"
    for kind, count in kinds.items():
        assert numbers[kind] == f"{count:,}"
    top_message, top_count = messages.most_common(1)[0]
    assert re.search(rf"^\s+{top_count}  {re.escape(top_message)}$", text, re.MULTILINE)
    assert re.search(rf"^bytes\s+.*  {sum(sizes):,}$", text, re.MULTILINE)
    # numbers end in one column
    ends = {line.index(numbers[name]) + len(numbers[name]) for line in lines
            for name in ("records", "success") if line.split()[:1] == [name]}
    assert len(ends) == 1


def test_tee_passes_lines_through_byte_for_byte(pipeline, tmp_path):
    records = make_records(150, seed=11)
    lines = [orjson.dumps(r) for r in records]
    # Odd but valid spellings that a re-encoder would change: spaces, escapes, exponent floats.
    lines[0] = b'{ "url" : "http://example.test/\\u00e9", "status":"success", "size": 5 , "x": 1.0e3 }'
    lines[1] = b'{"status": "filtered",  "url":"u"}\t'
    data = b"\n".join(lines) + b"\n"
    (tmp_path / "in.jsonl").write_bytes(data)
    result = pipeline("a2d-stats --tee in.jsonl > passed.jsonl 2> report.txt && "
                      "a2d-stats --tee -q in.jsonl 2> quiet.txt | cmp - in.jsonl && "
                      "cat in.jsonl | a2d-stats --tee --json 2> report.json | a2d-stats --json > again.json")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "passed.jsonl").read_bytes() == data
    assert re.search(r"^records\s+150$", (tmp_path / "report.txt").read_text(), re.MULTILINE)
    assert (tmp_path / "quiet.txt").read_text() == ""
    first, second = (json.loads((tmp_path / name).read_text()) for name in ("report.json", "again.json"))
    for key in ("records", "statuses", "error_kinds", "top_errors", "bytes", "size", "size_histogram"):
        assert first[key] == second[key]
    assert first["statuses"]["filtered"] == sum(1 for r in records[2:] if r.get("status") == "filtered") + 1


def test_bad_input_line_stops_with_its_position_and_exit_3(pipeline):
    for flags in ("", "--tee"):
        result = pipeline(f"printf '{{\"url\": \"a\"}}\\n\\n{{oops\\n' | a2d-stats {flags} > /dev/null")
        assert result.returncode == 3
        assert result.stderr.decode().startswith("a2d-stats: error: <stdin>:3: not valid JSON")
        assert len(result.stderr.splitlines()) == 1
    skipped = pipeline("printf '{\"status\": \"done\"}\\n{\"url\": \"a\"}\\n' | a2d-stats --on-error skip --json")
    assert skipped.returncode == 0
    report = json.loads(skipped.stdout)
    assert report["records"] == 1 and report["skipped_lines"] == 1
    assert b"skipped 1 bad input line(s)" in skipped.stderr


def test_closed_stdout_ends_quietly(pipeline, tmp_path):
    record = {"url": "u", "status": "success", "files": {"bin": base64.b64encode(bytes(30000)).decode()}}
    (tmp_path / "in.jsonl").write_bytes(jsonl([record] * 1500))  # 60 MB: far more than a pipe holds
    for command in ("a2d-stats --tee in.jsonl | head -1 | wc -l", "a2d-stats in.jsonl | head -1"):
        result = pipeline(command)
        assert result.returncode == 0, result.stderr
        assert result.stderr == b""
        assert len(result.stdout.splitlines()) == 1


def test_missing_paths_are_one_line_errors(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "folder").mkdir()
    (tmp_path / "empty.jsonl").write_bytes(b"")
    cases = {
        ("nope.jsonl",): "a2d-stats: error: nope.jsonl: no such file or folder",
        ("empty.jsonl", "missing/"): "a2d-stats: error: missing/: no such file or folder",
        ("folder",): "a2d-stats: error: folder: no shards here",
        ("empty.jsonl", "folder"): "a2d-stats: error: folder is a folder",
    }
    for args, message in cases.items():
        result = cli(stats_command.main, list(args))
        assert result.exit_code == 2, (args, result.stderr)
        assert result.stderr.startswith(message), (args, result.stderr)
        assert len(result.stderr.splitlines()) == 1 and result.stdout == ""


def test_empty_stream(cli):
    report = json.loads(cli(stats_command.main, ["--json"], input=b"").stdout)
    assert report["records"] == 0 and report["success_rate"] is None and report["size"]["p50"] is None


# ---------------------------------------------------------------------------- datasets


@pytest.fixture
def dataset(pipeline, tmp_path):
    """A dataset written by the real a2d-write (10 rows a shard, shards 00000-00005), then:
    00002 left incomplete (no stats), 00004 missing (no files), 00006 only a hidden temporary."""
    records = make_records(60, seed=21)
    (tmp_path / "in.jsonl").write_bytes(jsonl(records))
    result = pipeline("a2d-write -q --number-sample-per-shard 10 out in.jsonl")
    assert result.returncode == 0, result.stderr
    out = tmp_path / "out"
    (out / "00002_stats.json").unlink()
    for path in out.glob("00004*"):
        path.unlink()
    (out / ".00006.tar.tmp4242").write_bytes(b"half a tar")
    (out / "_SUCCESS").write_bytes(b"")
    (out / ".hidden.parquet").write_bytes(b"not parquet")
    complete = [0, 1, 3, 5]
    rows = [r for shard in complete for r in records[10 * shard:10 * shard + 10]]
    return out, rows, complete


def duckdb_counts(out, complete):
    files = [str(out / f"{shard:05d}.parquet") for shard in complete]
    con = duckdb.connect()
    con.execute(f"create view meta as select * from read_parquet({files!r})")
    statuses = dict(con.execute("select coalesce(status, 'no_status'), count(*) from meta group by all").fetchall())
    kinds = dict(con.execute("select error_kind, count(*) from meta where error_kind is not null group by all")
                 .fetchall())
    messages = dict(con.execute("select error_message, count(*) from meta where error_message is not null "
                                "and coalesce(status, '') <> 'success' group by all").fetchall())
    sizes = [row[0] for row in con.execute("select size from meta where size is not null order by size").fetchall()]
    return statuses, kinds, messages, sizes


def check_dataset_report(report, out, rows, complete):
    statuses, kinds, messages, sizes = duckdb_counts(out, complete)
    mine = expected(rows)
    assert statuses == dict(mine[0]) and kinds == dict(mine[1]) and messages == dict(mine[2])
    assert report["mode"] == "dataset"
    assert report["records"] == len(rows) == sum(statuses.values())
    assert report["statuses"] == {name: statuses.get(name, 0) for name in statistics.STATUS_NAMES}
    assert report["error_kinds"] == kinds
    assert dict(report["top_errors"]) == messages
    assert report["shards"] == {"complete": len(complete), "incomplete": ["00002", "00006"], "missing": ["00004"]}
    stats = [orjson.loads((out / f"{shard:05d}_stats.json").read_bytes()) for shard in complete]
    successes = sum(1 for r in rows if r.get("status") == "success")
    assert report["bytes"] == sum(s["bytes"] for s in stats) == sum(
        len(base64.b64decode(p)) for r in rows if r.get("status") == "success" for p in r["files"].values())
    assert report["samples"] == successes
    duration = max(s["end_time"] for s in stats) - min(s["run_start_time"] for s in stats)
    assert report["duration"] == pytest.approx(duration, abs=0.002)
    assert report["samples_per_second"] == pytest.approx(successes / duration, rel=0.01)
    check_sizes(report["size"], sizes)  # from the parquet `size` column: only rows that had one
    assert [end[0] for end in report["shard_ends"]] == [
        f"{s['shard']:05d}" for s in sorted(stats, key=lambda s: s["end_time"])]
    assert report["shard_ends"][-1][2] == successes
    assert report["warnings"] == []


def test_dataset_written_by_a2d_write(pipeline, dataset):
    out, rows, complete = dataset
    result = pipeline("a2d-stats --json out/")
    assert result.returncode == 0, result.stderr
    check_dataset_report(json.loads(result.stdout), out, rows, complete)
    text = pipeline("a2d-stats out").stdout.decode()
    assert re.search(r"^shards\s+4  complete$", text, re.MULTILINE)
    assert re.search(r"^\s+2  incomplete: 00002, 00006$", text, re.MULTILINE)
    assert re.search(r"^\s+1  missing: 00004$", text, re.MULTILINE)
    assert "warning" not in text


def test_dataset_on_s3(s3, s3_server, pipeline, dataset):
    out, rows, complete = dataset
    for path in out.iterdir():
        s3.put_file(str(path), f"test-bucket/data/out/{path.name}")
    report = statistics.dataset_stats("s3://test-bucket/data/out")
    check_dataset_report(report, out, rows, complete)
    assert report["source"] == "s3://test-bucket/data/out"
    result = pipeline("a2d-stats --json s3://test-bucket/data/out/", env=s3_server.env)
    assert result.returncode == 0, result.stderr
    assert {k: v for k, v in json.loads(result.stdout).items() if k != "source"} == {
        k: v for k, v in report.items() if k != "source"}
    missing = pipeline("a2d-stats s3://test-bucket/nothing/", env=s3_server.env)
    assert missing.returncode == 2
    assert missing.stderr.decode() == "a2d-stats: error: s3://test-bucket/nothing/: no such file or folder\n"


def test_stats_json_and_parquet_disagreeing_is_a_warning(cli, dataset):
    out, rows, _ = dataset
    stats_path = out / "00001_stats.json"
    stats = orjson.loads(stats_path.read_bytes())
    stats["count"] += 1
    stats["error_kinds"] = {"dns": 99}
    stats_path.write_bytes(orjson.dumps(stats))
    report = statistics.dataset_stats(str(out))
    assert report["records"] == len(rows)  # counts come from the parquet
    assert report["warnings"] == [(f"shard 00001: count is {stats['count']} in 00001_stats.json but "
                                   f"{stats['count'] - 1} in 00001.parquet"),
                                  "shard 00001: error_kinds of 00001_stats.json differ from 00001.parquet"]
    text = cli(stats_command.main, [str(out)]).stdout
    assert "warning: shard 00001: count is" in text


def test_dataset_of_other_layouts_and_foreign_parquet(tmp_path):
    """The parquet format's payload columns are not needed and missing columns are tolerated;
    a shard without parquet is counted from its _stats.json; a folder per shard is a shard file."""
    out = tmp_path / "out"
    out.mkdir()
    table = pa.table({"key": ["0", "1", "2", "3"], "status": ["success", "success", "failed_to_download", None],
                      "error_message": ["a success's message is not an error", None, None, "no status, but a message"],
                      "jpg": pa.array([b"a" * 100, b"b" * 50, None, None], pa.binary())})
    pq.write_table(table, out / "000.parquet")
    (out / "000_stats.json").write_bytes(orjson.dumps({"count": 4, "successes": 2, "failed_to_download": 1,
                                                       "bytes": 150, "start_time": 10.0, "end_time": 12.0}))
    (out / "001_stats.json").write_bytes(orjson.dumps({
        "count": 5, "successes": 3, "failed_to_download": 2, "bytes": 30, "start_time": 11.0, "end_time": 14.0,
        "status_dict": {"success": 3, "HTTP 404 Not Found": 2}, "error_kinds": {"http_4xx": 2}, "samples": 3}))
    (out / "002").mkdir()
    (out / ".002.parquet.tmp77.fix").write_bytes(b"")
    (out / "004.tfrecord").write_bytes(b"")
    report = statistics.dataset_stats(str(out), top=5)
    assert report["statuses"] == {"success": 5, "failed_to_download": 3, "failed_to_subsample": 0, "filtered": 0,
                                  "no_status": 1}
    assert report["error_kinds"] == {"http_4xx": 2}
    assert report["top_errors"] == [["HTTP 404 Not Found", 2], ["no status, but a message", 1]]
    assert report["bytes"] == 180 and report["samples"] == 5 and report["duration"] == 4.0
    assert report["samples_per_second"] == 1.25
    assert report["shards"] == {"complete": 2, "incomplete": ["002", "004"], "missing": ["003"]}
    assert report["size"]["count"] == 0
    assert report["warnings"] == []
    assert statistics.dataset_stats(str(out), first_shard=3)["shards"]["missing"] == ["003"]


def test_tee_on_a_dataset_is_a_usage_error(cli, dataset):
    out, _, _ = dataset
    result = cli(stats_command.main, ["--tee", str(out)])
    assert result.exit_code == 2
    assert result.stderr.startswith("a2d-stats: error: --tee")


# ---------------------------------------------------------------------------- html


def assert_self_contained(page):
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")
    assert page.count("<svg") >= 3
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.IGNORECASE)
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page.lower() and "<link" not in page.lower() and "@import" not in page


def test_html_report_of_a_stream_is_self_contained_and_escaped(pipeline, tmp_path):
    records = make_records(80, seed=2)
    records[3] = {"url": "u", "status": "failed_to_download", "error_kind": "other",
                  "error_message": '<script>alert("x")</script> & more'}
    (tmp_path / "in.jsonl").write_bytes(jsonl(records))
    result = pipeline("a2d-stats --html report.html in.jsonl")
    assert result.returncode == 0, result.stderr
    page = (tmp_path / "report.html").read_text()
    assert_self_contained(page)
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; more" in page
    assert "Payload sizes" in page and "Throughput" in page and "failed_to_download" in page


def test_html_report_of_a_dataset(cli, dataset, tmp_path):
    out, rows, _ = dataset
    result = cli(stats_command.main, ["--html", str(tmp_path / "d.html"), "--json", str(out)])
    assert json.loads(result.stdout)["records"] == len(rows)
    page = (tmp_path / "d.html").read_text()
    assert_self_contained(page)
    assert page.count("<svg") == 4 and "<polyline" in page and "00004" in page


def test_a_files_format_temporary_folder_marks_its_shard_incomplete(tmp_path):
    from any2dataset.stats import dataset_stats
    from any2dataset.write import WriteOptions, write

    records = [{"url": f"u{i}", "status": "success", "files": {"jpg": b"x"}} for i in range(2)]
    list(write(records, str(tmp_path), WriteOptions(output_format="files", number_sample_per_shard=1)))
    (tmp_path / ".00002.tmp4242").mkdir()  # a killed writer's folder for shard 2
    assert dataset_stats(str(tmp_path))["shards"]["incomplete"] == ["00002"]


def test_tee_writes_the_records_to_dash_o(pipeline, tmp_path):
    data = b"".join(orjson.dumps(r) + b"\n" for r in make_records(20, seed=3))
    (tmp_path / "in.jsonl").write_bytes(data)
    result = pipeline("a2d-stats --tee -o passed.jsonl in.jsonl > stdout.txt 2> report.txt")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "passed.jsonl").read_bytes() == data and (tmp_path / "stdout.txt").read_bytes() == b""
    assert re.search(r"^records\s+20$", (tmp_path / "report.txt").read_text(), re.MULTILINE)
