"""The README's first command: examples/quickstart.sh builds a real dataset from a local server."""

import orjson
import pyarrow.dataset as ds
import webdataset as wds

from conftest import ROOT, run_pipeline


def test_quickstart_builds_the_example_dataset(tmp_path):
    out = tmp_path / "out"
    result = run_pipeline(f"{ROOT / 'examples' / 'quickstart.sh'} {out}", tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr.decode()
    assert b"a2d-write: 2 shards, 15 rows, 12 samples written" in result.stderr

    samples = list(wds.WebDataset(str(out / "0000{0..1}.tar"), shardshuffle=False))
    by_name = {}
    for sample in samples:
        meta = orjson.loads(sample["json"])
        name = meta["url"].rsplit("/", 1)[1]
        # The payload under the file's own extension; a .txt file's is payload.txt (txt is the caption).
        extension = name.rsplit(".", 1)[1]
        by_name[name] = sample["payload.txt" if extension == "txt" else extension]
    assert len(by_name) == 12
    for name, payload in by_name.items():
        assert payload == (ROOT / "examples" / "data" / name).read_bytes()

    rows = ds.dataset(str(out), format="parquet", exclude_invalid_files=True).to_table().to_pylist()
    assert len(rows) == 15
    failures = {row["caption"]: row["error_kind"] for row in rows if row["status"] != "success"}
    assert failures == {"a file the server does not have": "http_4xx",
                        "a scheme a2d-fetch refuses": "scheme_denied",
                        "a row without a URL": "invalid_url"}


def test_resume_and_retry_example(tmp_path):
    out = tmp_path / "out"
    result = run_pipeline(f"{ROOT / 'examples' / 'resume_and_retry.sh'} {out}", tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr.decode()
    assert b"a2d-write exited with 4" in result.stdout
    assert b"a2d-shard: 1 finished shard(s)" in result.stderr
    rows = ds.dataset(str(out), format="parquet", exclude_invalid_files=True).to_table().to_pylist()
    assert len(rows) == 15 and len({r["key"] for r in rows}) == 15
    assert sorted(r["error_kind"] for r in rows if r["status"] != "success") == [
        "http_4xx", "invalid_url", "scheme_denied"]
    blue = [r for r in rows if r["caption"] == "a blue gradient"]
    assert blue[0]["status"] == "success"  # failed the first time, fetched again at the end


def test_formats_example_writes_the_same_samples_in_every_format(tmp_path):
    out = tmp_path / "out"
    result = run_pipeline(f"{ROOT / 'examples' / 'formats.sh'} {out}", tmp_path, timeout=180)
    assert result.returncode == 0, result.stderr.decode()
    digests = [line.split()[1] for line in result.stdout.decode().splitlines()
               if line.split(":")[0] in ("webdataset", "files", "parquet", "tfrecord")]
    assert len(digests) == 4 and len(set(digests)) == 1
    assert b"records                     15" in result.stderr  # a2d-stats --tee's report
    assert "<svg" in (out / "report.html").read_text()
    assert sorted(p.name for p in (out / "files").iterdir()) == [
        "00000", "00000.parquet", "00000_stats.json", "00001", "00001.parquet", "00001_stats.json"]


def test_crawl_example_accounts_for_every_url_of_the_simulated_internet(tmp_path):
    import sys
    from urllib.parse import urlsplit

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import siminet

    out = tmp_path / "out"
    result = run_pipeline(f"{ROOT / 'examples' / 'crawl.sh'} {out}", tmp_path, timeout=240)
    assert result.returncode == 0, result.stderr.decode()
    rows = ds.dataset(str(out), format="parquet", exclude_invalid_files=True).to_table().to_pylist()
    assert len(rows) == 3000 and len({r["key"] for r in rows}) == 3000
    by_key = {r["key"]: r for r in rows}
    for row in rows:
        outcome = urlsplit(row["url"]).path.split("/")[1]
        if outcome in ("e404", "e403", "e500"):
            assert row["status"] == "failed_to_download" and row["http_status"] == int(outcome[1:])
        elif row["status"] != "success":
            assert row["error_kind"] and row["error_message"]
    successes = [r for r in rows if r["status"] == "success"]
    assert len(successes) >= 2500
    samples = 0
    for sample in wds.WebDataset(str(out / "0000{0..2}.tar"), shardshuffle=False):
        row = by_key[sample["__key__"]]
        path = urlsplit(row["final_url"] or row["url"]).path
        assert sample["jpg"] == siminet.expected_body(path), row["url"]
        samples += 1
    assert samples == len(successes)


def test_cut_short_example_publishes_no_short_shard_then_finishes(tmp_path):
    out = tmp_path / "out"
    result = run_pipeline(f"{ROOT / 'examples' / 'cut_short.sh'} {out}", tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr.decode()
    first, second = result.stdout.decode().split("== 2.")
    assert "the pipeline failed with status 5" in first
    assert "_stats.json" not in first  # nothing was finished from the cut list
    rows = ds.dataset(str(out), format="parquet", exclude_invalid_files=True).to_table().to_pylist()
    assert len(rows) == 60 and len({r["key"] for r in rows}) == 60
    stats = [orjson.loads(p.read_bytes()) for p in sorted(out.glob("*_stats.json"))]
    assert [s["count"] for s in stats] == [20, 20, 20]
