"""Summaries that tell the truth: what each command says at the end matches what it did."""

import orjson
import pytest


def lines(stdout: bytes) -> list[dict]:
    return [orjson.loads(line) for line in stdout.splitlines()]


def test_dataset_throughput_counts_the_downloads_not_only_the_writing(pipeline, http_server):
    urls = "".join(orjson.dumps({"url": http_server.url(f"summaries/slow{i}.bin", delay=1.0)}).decode() + "\n"
                   for i in range(4))
    result = pipeline("a2d-shard | a2d-fetch -j 4 | a2d-write out/ && a2d-stats --json out/", input=urls.encode())
    assert result.returncode == 0, result.stderr
    report = orjson.loads(result.stdout)
    assert report["samples"] == 4
    assert report["duration"] >= 0.9, report  # the downloads took a second; writing them a few ms


def test_subsample_says_how_many_it_kept(pipeline, http_server):
    records = b"".join(orjson.dumps(r) + b"\n" for r in [
        {"key": "0", "status": "success", "files": {"html": "PGh0bWw+"}},
        {"key": "1", "status": "failed_to_download", "error_kind": "dns", "error_message": "x"},
        {"key": "2", "status": "success", "files": {"bin": "AAAA"}},
        {"key": "3", "status": "success", "files": {"bin": "A" * 200}},
    ]) + b"".join(orjson.dumps({"key": "4", "shard": 0, "shard_size": 1, "status": "success",
                                "files": {"bin": "AAAA"}}) + b"\n" for _ in range(1))
    result = pipeline("a2d-subsample -w 1 --where 'size >= 100'", input=records)
    assert result.returncode == 0, result.stderr
    # records without a shard that are not kept are left out; with a shard they stay, as filtered
    assert b"a2d-subsample: 5 records read, 3 written: failed_to_download 1, success 1, filtered 1\n" \
        in result.stderr, result.stderr


@pytest.mark.parametrize("command", ["a2d-shard", "a2d-fetch", "a2d-subsample -w 1", "a2d-write out/", "a2d-stats",
                                     "a2d-mix"])
def test_empty_input_is_warned_about(pipeline, command):
    result = pipeline(command, input=b"")
    assert result.returncode == 0, result.stderr
    assert b": warning: no records in the input\n" in result.stderr


def test_skip_done_says_what_it_found_and_why_it_stops(pipeline, tmp_path):
    first = "".join(f"http://127.0.0.1:9/a{i}\n" for i in range(4))
    changed = "".join(f"http://127.0.0.1:9/b{i}\n" for i in range(4))
    (tmp_path / "first.txt").write_text(first)
    (tmp_path / "changed.txt").write_text(changed)
    made = pipeline("a2d-read first.txt | a2d-shard --number-sample-per-shard 4 | a2d-fetch --retries 0 "
                    "| a2d-write out/")
    assert made.returncode == 0, made.stderr
    again = pipeline("a2d-read changed.txt | a2d-shard --number-sample-per-shard 4 --skip-done out/ > /dev/null")
    assert again.returncode != 0
    assert b"will be skipped" not in again.stderr  # it is not: the rows differ
    assert b"4 rows then and now, but other URLs or keys" in again.stderr, again.stderr


def test_an_over_long_key_is_bad_input_not_an_os_error(pipeline):
    record = orjson.dumps({"key": "k" * 300, "url": "u", "status": "success", "files": {"bin": "AAAA"}}) + b"\n"
    result = pipeline("a2d-write --format files out/", input=record)
    assert result.returncode == 3, result.stderr
    assert result.stderr.startswith(b"a2d-write: error: <stdin>:1: key of 300 bytes is too long"), result.stderr


def test_a2d_read_warns_about_an_empty_list(pipeline, tmp_path):
    (tmp_path / "urls.csv").write_text("url,caption\n")
    result = pipeline("a2d-read urls.csv")
    assert result.returncode == 0 and result.stdout == b""
    assert b"a2d-read: warning: no rows in urls.csv\n" in result.stderr


@pytest.mark.parametrize("workers", ["1", "2"])
def test_fetch_counts_downloads_apart_from_records_passed_through(pipeline, http_server, workers):
    records = b"".join(orjson.dumps(r) + b"\n" for r in [
        {"url": http_server.url("summaries/new.bin"), "key": "0"},
        {"url": http_server.url("summaries/had.bin"), "key": "1", "status": "success", "files": {"bin": "AAAA"}},
        {"url": http_server.url("summaries/gone.bin"), "key": "2", "status": "failed_to_download",
         "error_kind": "http_4xx", "error_message": "HTTP 404"},
        {"url": http_server.url("summaries/404.bin", status=404), "key": "3"},
    ])
    result = pipeline(f"a2d-fetch -w {workers} | cat > /dev/null", input=records)
    assert result.returncode == 0, result.stderr
    assert result.stderr.endswith(b"a2d-fetch: 4 records: 1 downloaded, 1 failed (http_4xx 1), "
                                  b"2 passed through untouched\n"), result.stderr
