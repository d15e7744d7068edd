"""stats.counting alone: the one record counter a2d-write, a2d-fetch and a2d-stats count with,
and a shard's `_stats.json` figures built from it."""

import ast
import base64
import random
import subprocess
import sys
from pathlib import Path

import pytest

from any2dataset.fetch.processes import Tally
from any2dataset.stats import StreamStats
from any2dataset.stats.counting import MESSAGE_CAP, STATUS_DICT_CAP, RecordCounter, ShardStats, payload_size

STATS = Path(__file__).resolve().parent.parent / "any2dataset" / "stats"


def counted(records, **settings):
    counter = RecordCounter(**settings)
    for record in records:
        counter.add(record)
    return counter


def mixed_records(n, seed):
    chooser = random.Random(seed)
    records = []
    for i in range(n):
        record = {"key": f"{i:05d}"}
        status = chooser.choice(["success", "failed_to_download", "failed_to_subsample", "failed_to_resize",
                                 "filtered", None])
        if status:
            record["status"] = status
        if status != "success" and chooser.random() < 0.8:
            record["error_kind"] = chooser.choice(["dns", "timeout", "http_4xx"])
            record["error_message"] = f"message {chooser.randrange(20)}"
        if chooser.random() < 0.7:
            record["size"] = chooser.randrange(10**6)
        records.append(record)
    return records


@pytest.mark.parametrize("length", range(9))
def test_payload_size_from_base64_length_without_decoding(length):
    data = bytes(range(length))
    assert payload_size({"files": {"bin": base64.b64encode(data).decode()}}) == length
    assert payload_size({"files": {"bin": data, "b": base64.b64encode(data).decode()}}) == 2 * length
    assert payload_size({"size": 99, "files": {"bin": data}}) == 99
    assert payload_size({"status": "failed_to_download"}) is None


def test_the_counting_rules():
    counter = counted([
        {"status": "success", "size": 10, "error_kind": "odd", "error_message": "not counted: a success"},
        {"status": "failed_to_resize", "error_kind": "decode_error", "error_message": "cannot decode"},
        {"status": "failed_to_download", "error_kind": "dns", "error_message": "no such host"},
        {"status": "failed_to_download", "error_kind": "dns", "error_message": "no such host"},
        {"error_message": "", "error_kind": ""},
        {"status": "", "files": {"jpg": b"12345"}},
        {"status": "filtered", "error_message": "too small", "size": 0},
    ])
    assert counter.statuses == {"success": 1, "failed_to_subsample": 1, "failed_to_download": 2, "no_status": 2,
                                "filtered": 1}
    assert counter.records == 7 and counter.successes == 1
    assert counter.error_kinds == {"dns": 2, "decode_error": 1, "odd": 1}  # every record's kind
    assert counter.messages == {"cannot decode": 1, "no such host": 2, "too small": 1}
    assert counter.bytes == 15 and counter.sizes.count == 3
    report = counter.report(top=1)
    assert list(report["statuses"]) == ["success", "failed_to_download", "failed_to_subsample", "filtered",
                                        "no_status"]
    assert report["top_errors"] == [["no such host", 2]] and report["success_rate"] == round(1 / 7, 4)
    assert report["error_kinds"] == {"dns": 2, "decode_error": 1, "odd": 1}


def test_sizes_as_a_histogram_a_total_or_not_at_all():
    records = [{"size": 7}, {"files": {"bin": b"abc"}}, {"status": "failed_to_download"}]
    histogram, total, unmeasured = (counted(records, sizes=s) for s in ("histogram", "total", None))
    assert histogram.bytes == total.bytes == 10 and unmeasured.bytes == 0
    assert histogram.sizes.summary()["count"] == 2 and total.sizes.count == unmeasured.sizes.count == 0
    tally = Tally()  # a2d-fetch's: the total its progress line shows, no histogram
    tally.add({"status": "success", "size": 5})
    assert (tally.bytes, tally.sizes.count, Tally.from_line(tally.to_line()).bytes) == (5, 0, 5)
    with pytest.raises(ValueError):
        RecordCounter(sizes="all")


def test_messages_past_the_cap_only_add_to_untracked():
    counter = counted([{"status": "failed_to_download", "error_message": f"m{i % 7}"} for i in range(50)],
                      message_cap=5)
    assert set(counter.messages) == {f"m{i}" for i in range(5)}
    assert counter.untracked == 50 - sum(counter.messages.values()) == 2 * 7  # m5 and m6
    assert RecordCounter().message_cap == MESSAGE_CAP


def test_status_dict_counts_successes_outside_the_cap_as_img2dataset_does():
    failures = [{"status": "failed_to_download", "error_message": f"m{i}"} for i in range(STATUS_DICT_CAP + 5)]
    late = counted(failures + [{"status": "success"}] * 3, message_cap=STATUS_DICT_CAP, success_message=True)
    assert len(late.messages) == STATUS_DICT_CAP + 1 and late.messages["success"] == 3
    early = counted([{"status": "success"}] + failures, message_cap=STATUS_DICT_CAP, success_message=True)
    assert len(early.messages) == STATUS_DICT_CAP and list(early.messages)[0] == "success"


def test_merging_counters_is_counting_everything_in_one():
    records = mixed_records(600, seed=4)
    whole = counted(records)
    merged = RecordCounter.total([counted(records[:250]), counted(records[250:400]), counted(records[400:])])
    assert merged.messages == whole.messages  # (equal counts may list in another order)
    merged_report, whole_report = merged.report(top=100), whole.report(top=100)
    assert dict(merged_report.pop("top_errors")) == dict(whole_report.pop("top_errors"))
    assert merged_report == whole_report


def test_a_worker_line_carries_what_progress_shows():
    counter = counted(mixed_records(300, seed=5))
    line = counter.to_line()
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    back = RecordCounter.from_line(line)
    assert (back.statuses, back.error_kinds, back.bytes, back.records, back.successes) == \
        (counter.statuses, counter.error_kinds, counter.bytes, counter.records, counter.successes)
    total = RecordCounter.total([back, RecordCounter.from_line(line)])
    assert total.records == 2 * counter.records and total.bytes == 2 * counter.bytes


def test_fetch_write_and_stats_count_one_stream_alike():
    records = mixed_records(400, seed=6)
    tally, stream, shard = Tally(), StreamStats(), ShardStats()
    for record in records:
        tally.add(record)
        stream.add(record)
        shard.add(record, 0)
    summary, report = shard.summary(0, "webdataset"), stream.report(top=20)
    assert isinstance(tally, RecordCounter)
    for name in ("success", "failed_to_download", "failed_to_subsample", "filtered", "no_status"):
        assert report["statuses"][name] == tally.statuses[name] == summary[
            {"success": "successes"}.get(name, name)]
    assert report["records"] == tally.records == summary["count"] == len(records)
    assert report["error_kinds"] == dict(tally.error_kinds) == summary["error_kinds"]
    assert summary["status_dict"] == {"success": report["statuses"]["success"], **dict(report["top_errors"])}


STATS_KEYS = ["shard", "format", "count", "successes", "failed_to_download", "failed_to_subsample", "filtered",
              "no_status", "bytes", "duration", "start_time", "run_start_time", "end_time", "status_dict",
              "error_kinds"]


def test_shard_stats_summary_keys_and_values():
    stats = ShardStats(run_start_time=12.5)
    stats.add({"status": "success"}, 100, downloaded=150)
    stats.add({"status": "failed_to_download", "error_kind": "dns", "error_message": "no such host"}, 0)
    stats.add({"status": "failed_to_subsample", "error_kind": "decode_error", "error_message": "bad"}, 0,
              downloaded=70)
    stats.add({}, 5)
    summary = stats.summary(3, "parquet")
    assert list(summary) == STATS_KEYS
    assert {k: v for k, v in summary.items() if k not in ("duration", "start_time", "end_time")} == {
        "shard": 3, "format": "parquet", "count": 4, "successes": 1, "failed_to_download": 1,
        "failed_to_subsample": 1, "filtered": 0, "no_status": 1, "bytes": 105, "run_start_time": 12.5,
        "status_dict": {"success": 1, "no such host": 1, "bad": 1}, "error_kinds": {"dns": 1, "decode_error": 1}}
    assert summary["start_time"] <= summary["end_time"]


def test_shard_stats_like_img2dataset_names_failed_to_resize():
    stats = ShardStats(like="img2dataset")
    stats.add({"status": "failed_to_resize", "error_message": "too small"}, 0)  # as --like img2dataset shows it
    summary = stats.summary(0, "webdataset")
    keys = STATS_KEYS[:6] + ["failed_to_resize"] + STATS_KEYS[6:]
    assert list(summary) == keys
    assert summary["failed_to_subsample"] == summary["failed_to_resize"] == 1


def test_shard_stats_like_video2dataset_counts_a_source_row_once():
    stats = ShardStats(like="video2dataset")
    for _clip in range(3):  # three clips of one video: bytes written for each, the row counted once
        stats.add({"status": "success"}, 10, source="v0", downloaded=1000)
    stats.add({"status": "failed_to_download", "error_kind": "http_4xx", "error_message": "404"}, 0,
              downloaded=99)  # a download failure's size is not a download
    stats.add({"status": "failed_to_subsample", "error_message": "no video stream"}, 0, downloaded=40)
    summary = stats.summary(0, "webdataset")
    assert list(summary) == STATS_KEYS[:10] + ["bytes_downloaded"] + STATS_KEYS[10:]
    assert (summary["count"], summary["successes"], summary["bytes"], summary["bytes_downloaded"]) == (3, 1, 30, 1040)
    assert summary["status_dict"] == {"success": 1, "404": 1, "no video stream": 1}


def _sibling_imports(path: Path) -> set[str]:
    """The stats modules that a stats module imports (relative imports inside the package)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            found.add(node.module)
    return found


def test_stats_modules_import_only_downward():
    below = {"histogram": set(), "counting": {"histogram"}, "stream": {"counting"}, "dataset": {"counting"},
             "text": set(), "html_page": {"text"}}
    for name, allowed in below.items():
        assert _sibling_imports(STATS / f"{name}.py") <= allowed, name
    assert _sibling_imports(STATS / "__init__.py") == set()  # its names load their module when used


@pytest.mark.parametrize("module, heavy", [
    ("any2dataset.stats.counting", ("pyarrow", "fsspec", "any2dataset.stats.dataset")),
    ("any2dataset.fetch.processes", ("pyarrow", "any2dataset.stats.dataset")),
])
def test_the_counter_stays_light(module, heavy):
    """a2d-fetch's worker processes import the counter: it loads no pyarrow, and the stats
    package loads no module its user did not ask for."""
    code = f"import sys, {module}; print([m for m in {heavy!r} if m in sys.modules])"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
