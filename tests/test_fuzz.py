"""Seeded fuzzing of what users and hostile lists feed the stages: URL strings, record lines and
input files. Whatever comes in: no traceback, an exit code from the documented set, one error
line, nothing written outside the output folder, and every row accounted for."""

import json
import os
import random

import pyarrow.parquet as pq
import pytest

from any2dataset import record as rec
from any2dataset.fetch import FetchOptions, fetch

SEED = int(os.environ.get("A2D_FUZZ_SEED", "20261203"))
DOCUMENTED_EXIT_CODES = {0, 1, 2, 3, 4, 5}


def _pick(rng, items):
    return items[rng.randrange(len(items))]


def fuzz_url(rng: random.Random, base: str) -> str:
    """A URL built from the pieces hostile lists use: odd schemes, whitespace and control
    characters, credentials, address spellings, traversal, unicode, huge ports."""
    scheme = _pick(rng, ["http", "https", "HTTP", "file", "data", "ftp", "gopher", "s3", "", "javascript", "http "])
    host = _pick(rng, [base.split("//", 1)[1], "127.0.0.1:1", "[::1]:1", "169.254.169.254", "2852039166",
                       "[::ffff:169.254.169.254]", "0x7f000001", "user:pw@127.0.0.1:1", "localhost:1",
                       "exa mple.test", "xn--caf-dma.test", "café.test", "metadata.google.internal", "",
                       "127.0.0.1:99999", "[fe80::1%25eth0]", "a" * 300])
    path = "".join(_pick(rng, ["/", "..", "%2e%2e", "%00", "\t", " ", "\x00", "\x7f", "é", "中文", "?", "#",
                               "a.jpg", "b.png", "?x=1&y=2", ";", "%", "\\", "\n"])
                   for _ in range(rng.randrange(6)))
    url = f"{scheme}://{host}{path}" if rng.random() < 0.8 else _pick(rng, [
        f"data:image/png;base64,{'%' * rng.randrange(5)}", "data:,hello", "/etc/passwd", " " + base + "/ok.jpg",
        "http:/" + host, "//" + host + "/x", "", "http://", "\x00", "💥://x"])
    return url[:rng.randrange(1, 400)] if rng.random() < 0.1 else url


def test_fetch_accounts_for_every_fuzzed_url(http_server):
    rng = random.Random(SEED)
    urls = [fuzz_url(rng, http_server.base) for _ in range(400)] + [None, 17, ["x"]]
    records = [{"url": url, "row": i} for i, url in enumerate(urls)]
    # A name that is not an address goes to a name server that does not exist, on loopback.
    options = FetchOptions(retries=0, timeout=1, deadline=3, dns_servers=("127.0.0.1:9",), concurrency=64)
    out = list(fetch(records, options))
    assert sorted(r["row"] for r in out) == list(range(len(urls)))
    for record in out:
        assert record["status"] in rec.STATUSES
        if record["status"] != "success":
            assert record["error_kind"] in rec.ERROR_KINDS, record
            assert record["error_message"]
        if isinstance(urls[record["row"]], str) or urls[record["row"]] is None:
            rec.check(record)  # what comes out is a valid record (17 and ["x"] stay what they were)
        url = urls[record["row"]]
        if isinstance(url, str):
            inner = url.strip(" \t\r\n\f\v\x00")
            if any(ord(c) < 0x20 or c == "\x7f" for c in inner) or (inner[:4].lower() == "http" and " " in inner):
                assert record["error_kind"] == "invalid_url", (url, record)  # read one way, never another
            if any(host in url.split("/")[2:3][0] if url.count("/") >= 2 else False
                   for host in ("169.254.169.254", "2852039166", "metadata.google.internal")):
                assert record["status"] != "success", (url, record)
    for request in http_server.requests:
        assert "\x00" not in request["path"] and " " not in request["path"]


def fuzz_record_line(rng: random.Random, number: int) -> str:
    value_pool = [None, "", "x", 0, -1, 1.5, True, [], {}, [1], {"a": 1}, "é" * 5, 2 ** 70, "../evil", "/abs",
                  "a/../../b", "..", "con", "x" * 300]
    record = {"url": f"http://x/{number}"}
    for name in rng.sample(sorted(rec.RESERVED) + ["extra", "a2d_abortx", "files"], rng.randrange(4)):
        record[name] = _pick(rng, value_pool)
    if rng.random() < 0.4:
        record["files"] = {_pick(rng, ["jpg", "png", ".x", "a/b", "json", "", "payload.txt", "ÿ"]):
                           _pick(rng, ["aGVsbG8=", "!!!", "", 5, "aGVsbG8"])}
    line = json.dumps(record)
    mutation = rng.random()
    if mutation < 0.05:
        line = line[: rng.randrange(len(line))]
    elif mutation < 0.08:
        line = _pick(rng, ["[]", "null", "1", '"s"', "{", "\x00", "{}"])
    return line


@pytest.mark.parametrize("output_format", ["webdataset", "parquet", "files", "tfrecord"])
def test_write_survives_fuzzed_records(output_format, pipeline, tmp_path):
    rng = random.Random(f"{SEED}-{output_format}")
    lines = [fuzz_record_line(rng, i) for i in range(300)]
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "out").mkdir()
    done = pipeline(f"a2d-write --on-error skip --format {output_format} --number-sample-per-shard 50 out "
                    f"< in.jsonl")
    stderr = done.stderr.decode()
    assert done.returncode in DOCUMENTED_EXIT_CODES and "Traceback" not in stderr, stderr
    assert sorted(os.listdir(tmp_path)) == ["in.jsonl", "out"]
    for root, _dirs, files in os.walk(tmp_path / "out"):
        for name in files:
            assert os.path.realpath(os.path.join(root, name)).startswith(str(tmp_path / "out"))
    if output_format == "webdataset":  # every sample's .json is its metadata, never a payload
        import tarfile

        for path in (tmp_path / "out").glob("*.tar"):
            with tarfile.open(path) as tar:
                for member in tar:
                    if member.name.endswith(".json") and member.name.count(".") == 1:
                        assert "url" in json.loads(tar.extractfile(member).read()), member.name
    if done.returncode == 0:
        written = sum(pq.read_table(p).num_rows for p in (tmp_path / "out").glob("*.parquet"))
        skipped = int(stderr.split("skipped ")[1].split(" ")[0]) if "skipped " in stderr else 0
        assert written + skipped == len([line for line in lines if line.strip()]), stderr  # blank: no row
    else:
        assert len([line for line in stderr.splitlines() if "error:" in line]) == 1, stderr


def fuzz_list(rng: random.Random, fmt: str) -> bytes:
    pieces = [b"url", b",", b"caption", b"\n", b'"', b"http://127.0.0.1:1/a.jpg", b"\r\n", b"\t", b"\x00",
              b"\xff\xfe", "é".encode(), b"{", b"}", b'"url":', b"[", b"]", b"null", b" "]
    if fmt == "csv":
        head = b"url,caption\n"
    elif fmt == "jsonl":
        head = b'{"url": "http://127.0.0.1:1/0.jpg"}\n'
    else:
        head = b""
    return head + b"".join(_pick(rng, pieces) for _ in range(rng.randrange(200)))


@pytest.mark.parametrize("fmt", ["txt", "csv", "tsv", "jsonl", "json"])
def test_read_survives_fuzzed_lists(fmt, pipeline, tmp_path):
    rng = random.Random(f"{SEED}-{fmt}")
    for _attempt in range(8):
        (tmp_path / f"list.{fmt}").write_bytes(fuzz_list(rng, fmt))
        done = pipeline(f"a2d-read list.{fmt} > out.jsonl")
        stderr = done.stderr.decode()
        assert done.returncode in DOCUMENTED_EXIT_CODES and "Traceback" not in stderr, stderr
        if done.returncode != 0:
            errors = [line for line in stderr.splitlines() if ": error: " in line]
            assert len(errors) == 1 and f"list.{fmt}" in errors[0], stderr
        else:
            for line in (tmp_path / "out.jsonl").read_text().splitlines():
                rec.parse(line.encode())
