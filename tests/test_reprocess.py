"""Existing datasets as input: our own and img2dataset-style outputs read back with keys kept;
resuming an interrupted run; fetching again only what failed."""

import io
import os
import signal
import subprocess
import tarfile
import time

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import webdataset as wds

from any2dataset.read import read
from any2dataset.shard import ShardOptions, shard
from any2dataset.write import WriteOptions, write
from conftest import command_env
from servers import body_for


def some_records(n=12, per_shard=5):
    records = []
    for r in shard(({"url": f"http://x/{i}.jpg", "caption": f"c{i}", "extra": i} for i in range(n)),
                   ShardOptions(number_sample_per_shard=per_shard)):
        if r["extra"] % 4 == 3:
            r.update(status="failed_to_download", error_kind="http_5xx", error_message="HTTP 503")
        else:
            r.update(status="success", files={"jpg": bytes([r["extra"]]) * 10})
        records.append(r)
    return records


def test_own_webdataset_output_reads_back_with_keys_shards_and_failures(tmp_path):
    originals = some_records()
    list(write([dict(r, files=dict(r["files"])) if "files" in r else dict(r) for r in originals],
               str(tmp_path / "out"), WriteOptions()))
    back = list(read([str(tmp_path / "out")]))
    assert len(back) == len(originals)
    by_key = {r["key"]: r for r in back}
    for original in originals:
        got = by_key[original["key"]]
        assert got["shard"] == original["shard"] and got["shard_size"] == original["shard_size"]
        assert got["url"] == original["url"] and got["caption"] == original["caption"]
        assert got["extra"] == original["extra"] and got["status"] == original["status"]
        assert got.get("files") == original.get("files")
    # Written again from what was read, the shards come out byte-identical.
    list(write(back, str(tmp_path / "again"), WriteOptions()))
    for name in ("00000.tar", "00001.tar", "00002.tar"):
        assert (tmp_path / "out" / name).read_bytes() == (tmp_path / "again" / name).read_bytes()


def img2dataset_like_shard(folder, shard_id, samples, failures):
    """A shard as img2dataset writes it: tar of key.jpg/.txt/.json and a metadata parquet."""
    name = f"{shard_id:05d}"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for key, jpg, caption in samples:
            meta = {"url": f"http://x/{key}.jpg", "key": key, "status": "success", "error_message": None,
                    "caption": caption, "width": 4, "height": 3}
            for ext, data in (("jpg", jpg), ("txt", caption.encode()), ("json", orjson.dumps(meta))):
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    (folder / f"{name}.tar").write_bytes(buffer.getvalue())
    rows = [{"url": f"http://x/{k}.jpg", "key": k, "status": "success", "error_message": None, "caption": c,
             "width": 4, "height": 3} for k, _, c in samples]
    rows += [{"url": f"http://x/{k}.jpg", "key": k, "status": "failed_to_download", "error_message": "timeout",
              "caption": None, "width": None, "height": None} for k in failures]
    pq.write_table(pa.Table.from_pylist(rows), folder / f"{name}.parquet")
    (folder / f"{name}_stats.json").write_text('{"count": %d}' % len(rows))


def test_img2dataset_webdataset_output(tmp_path):
    img2dataset_like_shard(tmp_path, 0, [("000000000", b"A", "first"), ("000000002", b"B", "third")], ["000000001"])
    img2dataset_like_shard(tmp_path, 1, [("000010000", b"C", "fourth")], [])
    records = list(read([str(tmp_path)]))
    assert [(r["key"], r["shard"], r["shard_size"], r["status"]) for r in records] == [
        ("000000000", 0, 3, "success"), ("000000002", 0, 3, "success"), ("000000001", 0, 3, "failed_to_download"),
        ("000010000", 1, 1, "success")]
    assert records[0]["files"] == {"jpg": b"A"} and records[0]["caption"] == "first" and records[0]["width"] == 4
    # Brace patterns over tars work too, and a tar alone (no parquet) still gives its samples.
    os.remove(tmp_path / "00001.parquet")
    alone = list(read([str(tmp_path / "0000{1..1}.tar")]))
    assert [(r["key"], r["files"], r["caption"]) for r in alone] == [("000010000", {"jpg": b"C"}, "fourth")]
    assert alone[0]["shard"] == 1 and "shard_size" not in alone[0]


def test_files_layout_and_parquet_of_records(tmp_path):
    (tmp_path / "00000").mkdir()
    for key, data in (("000000000", b"first"), ("000000001", b"second")):
        (tmp_path / "00000" / f"{key}.png").write_bytes(data)
        (tmp_path / "00000" / f"{key}.txt").write_text(f"caption {key}")
    pq.write_table(pa.Table.from_pylist([{"key": "000000000", "url": "u0", "caption": "caption 000000000"},
                                         {"key": "000000001", "url": "u1", "caption": "caption 000000001"},
                                         {"key": "000000002", "url": "u2", "caption": None,
                                          "status": "failed_to_download"}]), tmp_path / "00000.parquet")
    (tmp_path / "00000_stats.json").write_text("{}")
    records = list(read([str(tmp_path)]))
    assert [(r["key"], r.get("files")) for r in records] == [
        ("000000000", {"png": b"first"}), ("000000001", {"png": b"second"}), ("000000002", None)]
    assert {r["shard_size"] for r in records} == {3}

    # The parquet output format: payloads in binary columns named by extension.
    folder = tmp_path / "pq"
    folder.mkdir()
    pq.write_table(pa.table({"key": ["000070000", "000070001"], "url": ["a", "b"],
                             "status": ["success", "failed_to_download"], "jpg": [b"\xff\xd8", None]}),
                   folder / "00007.parquet")
    (folder / "00007_stats.json").write_text("{}")
    records = list(read([str(folder)]))
    assert records[0]["files"] == {"jpg": b"\xff\xd8"} and "files" not in records[1]
    assert [(r["shard"], r["shard_size"]) for r in records] == [(7, 2), (7, 2)]


def test_resume_after_a_killed_write_completes_the_dataset_exactly(http_server, tmp_path):
    rows = ["url,caption"]
    for i in range(40):
        faults = "?delay=30" if i == 37 else ("?status=404" if i % 7 == 6 else "")
        rows.append(f"{http_server.base}/resume/{i}.jpg{faults},row {i}")
    (tmp_path / "urls.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "out"
    run = f"a2d-read urls.csv | a2d-shard --number-sample-per-shard 10 --skip-done {out} | " \
          f"a2d-fetch -j 4 --timeout 60 --deadline 60 | a2d-write {out}"
    first = subprocess.Popen(["bash", "-o", "pipefail", "-c", run], cwd=tmp_path, env=command_env(),
                             start_new_session=True, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while len(list(out.glob("*_stats.json"))) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGKILL)  # row 37 keeps shard 3 unfinished
    first.wait()
    assert sorted(p.name for p in out.glob("*_stats.json")) == ["00000_stats.json", "00001_stats.json",
                                                                 "00002_stats.json"]
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("0000[012]*")}

    (tmp_path / "urls.csv").write_text("\n".join(rows).replace("?delay=30", "") + "\n")
    # The URL of row 37 changed, but it is in the unfinished shard: resuming is allowed.
    second = subprocess.run(["bash", "-o", "pipefail", "-c", run], cwd=tmp_path, env=command_env(),
                            capture_output=True, timeout=60)
    assert second.returncode == 0, second.stderr
    assert b"3 finished shard(s)" in second.stderr
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("0000[012]*")} == before  # not redone
    meta = [row for n in range(4) for row in pq.read_table(out / f"0000{n}.parquet").to_pylist()]
    assert sorted(int(r["caption"].split()[1]) for r in meta) == list(range(40))
    assert {r["key"] for r in meta} == {f"{s:05d}{i}" for s in range(4) for i in range(10)}
    samples = list(wds.WebDataset(str(out / "0000{0..3}.tar"), shardshuffle=False))
    assert len(samples) == 40 - len([i for i in range(40) if i % 7 == 6])
    assert not list(out.glob(".*"))  # the dead run's temporary files were cleaned or replaced
    # Changing a finished shard's rows is refused.
    (tmp_path / "urls.csv").write_text("\n".join(rows[:1] + rows[2:]) + "\n")
    third = subprocess.run(["bash", "-o", "pipefail", "-c", run], cwd=tmp_path, env=command_env(),
                           capture_output=True, timeout=60)
    # a2d-shard refuses (2); a2d-write, last in the pipe, stops at its abort line (5) and writes nothing.
    assert third.returncode == 5 and b"a2d-shard: error:" in third.stderr and b"changed since" in third.stderr


def test_fetch_again_only_what_failed(http_server, tmp_path, pipeline):
    rows = ["url,caption"]
    for i in range(12):
        faults = "?fail_times=1&status=503" if i % 3 == 0 else ""
        rows.append(f"{http_server.base}/retry/{i}.png{faults},row {i}")
    (tmp_path / "urls.csv").write_text("\n".join(rows) + "\n")
    first = pipeline("a2d-read urls.csv | a2d-shard --number-sample-per-shard 5 | a2d-fetch --retries 0 "
                     "| a2d-write out")
    assert first.returncode == 0, first.stderr
    failed = [r for n in range(3) for r in pq.read_table(tmp_path / "out" / f"0000{n}.parquet").to_pylist()
              if r["status"] != "success"]
    assert len(failed) == 4 and {r["error_kind"] for r in failed} == {"http_5xx"}
    keys_before = sorted(r["key"] for n in range(3)
                         for r in pq.read_table(tmp_path / "out" / f"0000{n}.parquet").to_pylist())
    requests_before = len(http_server.requests_for("retry/1.png"))

    again = pipeline("a2d-read out/ | a2d-fetch --retry-failed | a2d-write out")
    assert again.returncode == 0, again.stderr
    rows_after = [r for n in range(3) for r in pq.read_table(tmp_path / "out" / f"0000{n}.parquet").to_pylist()]
    assert {r["status"] for r in rows_after} == {"success"}
    assert sorted(r["key"] for r in rows_after) == keys_before
    assert len(http_server.requests_for("retry/1.png")) == requests_before  # successes were not downloaded again
    samples = list(wds.WebDataset(str(tmp_path / "out" / "0000{0..2}.tar"), shardshuffle=False))
    assert len(samples) == 12
    for sample in samples:
        i = int(orjson.loads(sample["json"])["caption"].split()[1])
        assert sample["png"] == body_for(f"/retry/{i}.png", 1000)


def test_dataset_on_s3_reads_back_and_resumes(s3, tmp_path):
    originals = some_records()
    list(write([dict(r) for r in originals], str(tmp_path / "out"), WriteOptions()))
    s3.put(str(tmp_path / "out") + "/", "test-bucket/ds/", recursive=True)
    back = list(read(["s3://test-bucket/ds/"]))
    assert sorted((r["key"], r["status"]) for r in back) == sorted((r["key"], r["status"]) for r in originals)
    assert {r["key"]: r.get("files") for r in back} == {r["key"]: r.get("files") for r in originals}
    from any2dataset.shard import resume_from

    assert sorted(resume_from("s3://test-bucket/ds")) == [0, 1, 2]
    one = list(read(["s3://test-bucket/ds/0000{1..1}.tar"]))
    assert {r["shard"] for r in one} == {1} and len(one) == 5
