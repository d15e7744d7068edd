"""a2d-write's formats read back by independent readers: the files layout, parquet with
pyarrow.dataset and DuckDB, TFRecord with a CRC-checking reader written here and
protobuf's own Example parser; s3:// output; round trips through a2d-read."""

import os
import struct
import subprocess
import sys
import tarfile

import orjson
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from any2dataset import record as rec
from any2dataset.errors import BadInput, MissingExtra, UsageProblem
from any2dataset.write import WriteOptions, write

FORMATS = ["webdataset", "files", "parquet", "tfrecord"]


def records(n, fail_every=3, extensions=("jpg",)):
    out = []
    for i in range(n):
        if i % fail_every == fail_every - 1:
            out.append({"url": f"http://x/{i}", "status": "failed_to_download", "error_kind": "http_5xx",
                        "error_message": f"HTTP 50{i % 2}", "row": i})
        else:
            ext = extensions[i % len(extensions)]
            out.append({"url": f"http://x/{i}", "caption": f"caption {i}", "status": "success", "row": i,
                        "width": i, "files": {ext: os.urandom(10 + i)}})
    return out


def successes(batch):
    return {r["row"]: r for r in batch if r["status"] == "success"}


# --- TFRecord: an independent CRC32C (bitwise, Castagnoli) and frame reader ---

def _crc32c_table():
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked(crc: int) -> int:
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def read_tfrecord_checked(path):
    data = open(path, "rb").read()
    position, out = 0, []
    while position < len(data):
        length_bytes = data[position:position + 8]
        (length,) = struct.unpack("<Q", length_bytes)
        (length_crc,) = struct.unpack("<I", data[position + 8:position + 12])
        assert length_crc == masked(crc32c(length_bytes)), "length CRC"
        payload = data[position + 12:position + 12 + length]
        (data_crc,) = struct.unpack("<I", data[position + 12 + length:position + 16 + length])
        assert data_crc == masked(crc32c(payload)), "data CRC"
        out.append(payload)
        position += 16 + length
    return out


def test_crc32c_golden_vectors():
    # The check value of CRC-32C and RFC 3720 (iSCSI) vectors: the reader above is right.
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(bytes(32)) == 0x8A9136AA
    assert crc32c(b"\xff" * 32) == 0x62A8AB43
    assert crc32c(bytes(range(32))) == 0x46DD794E
    # A frame of the empty record: length 0, then its masked CRCs.
    import google_crc32c

    from any2dataset.tfrecord_codec import frame

    empty = b"".join(frame(google_crc32c, []))
    assert empty == bytes(8) + struct.pack("<I", masked(crc32c(bytes(8)))) + struct.pack("<I", masked(0))


def test_tfrecord_shards_pass_crc_checks_and_parse_as_tf_examples(tmp_path):
    from tfrecord import example_pb2

    batch = records(10, extensions=("jpg", "png"))
    stats = list(write(batch, str(tmp_path), WriteOptions(output_format="tfrecord", number_sample_per_shard=5)))
    assert [s["samples"] for s in stats] == [4, 3]
    by_row = successes(batch)
    seen = set()
    for shard in ("00000", "00001"):
        for data in read_tfrecord_checked(tmp_path / f"{shard}.tfrecord"):
            example = example_pb2.Example()
            example.ParseFromString(data)
            features = example.features.feature
            row = features["row"].int64_list.value[0]
            source = by_row[row]
            ext = next(iter(source["files"]))
            assert features[ext].bytes_list.value[0] == source["files"][ext]
            assert features["txt"].bytes_list.value[0].decode() == source["caption"]
            assert features["key"].bytes_list.value[0].decode().startswith(shard)
            assert features["width"].int64_list.value[0] == row
            seen.add(row)
    assert seen == set(by_row)
    assert pq.read_table(tmp_path / "00000.parquet").num_rows == 5  # failures are in the metadata


def test_tfrecord_damage_is_detected_on_read(tmp_path):
    from any2dataset.read import ReadOptions, read

    list(write(records(3), str(tmp_path), WriteOptions(output_format="tfrecord")))
    path = tmp_path / "00000.tfrecord"
    data = bytearray(path.read_bytes())
    data[20] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(BadInput, match="fails its CRC"):
        list(read([str(path)], ReadOptions()))


def test_tfrecord_without_its_extra_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "google_crc32c", None)
    with pytest.raises(MissingExtra, match=r"any2dataset\[tfrecord\]"):
        list(write(records(2), str(tmp_path), WriteOptions(output_format="tfrecord")))


def test_files_layout_has_one_folder_per_shard(tmp_path):
    batch = records(6)
    list(write(batch, str(tmp_path), WriteOptions(output_format="files", number_sample_per_shard=3)))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "00000", "00000.parquet", "00000_stats.json", "00001", "00001.parquet", "00001_stats.json"]
    for row, source in successes(batch).items():
        key = rec.make_key(row // 3, row % 3, 3, 5)
        folder = tmp_path / key[:5]
        assert (folder / f"{key}.jpg").read_bytes() == source["files"]["jpg"]
        assert (folder / f"{key}.txt").read_text() == source["caption"]
        assert orjson.loads((folder / f"{key}.json").read_bytes())["row"] == row
    assert sorted(p.name for p in (tmp_path / "00000").iterdir()) == [
        "000000.jpg", "000000.json", "000000.txt", "000001.jpg", "000001.json", "000001.txt"]


def test_parquet_format_keeps_every_row_and_reads_as_one_table(tmp_path):
    import duckdb

    batch = records(12, extensions=("jpg", "png"))
    list(write(batch, str(tmp_path), WriteOptions(output_format="parquet", number_sample_per_shard=5)))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "00000.parquet", "00000_stats.json", "00001.parquet", "00001_stats.json", "00002.parquet",
        "00002_stats.json"]
    schemas = {str(pq.read_schema(tmp_path / f"0000{i}.parquet")) for i in range(3)}
    assert len(schemas) == 1
    table = ds.dataset(str(tmp_path), format="parquet", exclude_invalid_files=True).to_table()
    assert table.num_rows == 12
    by_row = successes(batch)
    for row in table.to_pylist():
        if row["status"] == "success":
            ext = next(iter(by_row[row["row"]]["files"]))
            assert row[ext] == by_row[row["row"]]["files"][ext]
        else:
            assert row["jpg"] is None and row["png"] is None
    assert row["shard_size"] == 2  # the short last shard says so in every row
    found = duckdb.sql(f"select count(*), count(jpg), count(png), sum(octet_length(jpg)) "
                       f"from read_parquet('{tmp_path}/*.parquet')").fetchall()[0]
    jpgs = [r["files"]["jpg"] for r in by_row.values() if "jpg" in r["files"]]
    pngs = [r for r in by_row.values() if "png" in r["files"]]
    assert found == (12, len(jpgs), len(pngs), sum(map(len, jpgs)))


def test_parquet_row_groups_and_the_last_short_shard(tmp_path, monkeypatch):
    from any2dataset.write import parquet

    monkeypatch.setattr(parquet, "ROW_GROUP_ROWS", 2)
    list(write(records(7), str(tmp_path), WriteOptions(output_format="parquet", number_sample_per_shard=5)))
    first, last = pq.ParquetFile(tmp_path / "00000.parquet"), pq.ParquetFile(tmp_path / "00001.parquet")
    assert first.num_row_groups == 3
    assert first.read().column("shard_size").to_pylist() == [5] * 5
    assert last.read().column("shard_size").to_pylist() == [2, 2]  # rewritten once its size was known


def test_payloads_without_a_parquet_column_are_kept_and_restored(tmp_path, pipeline):
    batch = [{"url": f"u{i}", "status": "success", "files": {"jpg" if i < 2 else "gif": bytes([i]) * 3}}
             for i in range(4)]
    notes = []
    list(write(batch, str(tmp_path / "out"), WriteOptions(output_format="parquet", number_sample_per_shard=2),
               on_note=notes.append))
    assert "gif" in notes[0] and "--payload-columns" in notes[0]
    assert pq.read_schema(tmp_path / "out" / "00001.parquet").names == \
        pq.read_schema(tmp_path / "out" / "00000.parquet").names
    result = pipeline("a2d-read out/")
    assert result.returncode == 0, result.stderr
    back = {r["url"]: rec.decode_payloads(r)["files"] for r in map(orjson.loads, result.stdout.splitlines())}
    assert back == {r["url"]: r["files"] for r in batch}
    # Declared up front, every extension gets its column.
    list(write([dict(r) for r in batch], str(tmp_path / "declared"),
               WriteOptions(output_format="parquet", number_sample_per_shard=2, payload_columns=["jpg", "gif"])))
    assert pq.read_table(tmp_path / "declared" / "00001.parquet").column("gif").to_pylist() == \
        [bytes([2]) * 3, bytes([3]) * 3]


@pytest.mark.parametrize("output_format", FORMATS)
def test_round_trip_through_a2d_read_reproduces_keys_and_payloads(tmp_path, pipeline, output_format):
    batch = records(9, extensions=("jpg", "png"))
    source = tmp_path / "source.jsonl"
    source.write_bytes(b"".join(rec.dumps(r) for r in batch))
    first = pipeline(f"a2d-shard --number-sample-per-shard 4 source.jsonl | a2d-write --format {output_format} a/")
    assert first.returncode == 0, first.stderr
    again = pipeline(f"a2d-read a/ | a2d-write --format {output_format} b/ && a2d-read b/ > b.jsonl "
                     f"&& a2d-read a/ > a.jsonl")
    assert again.returncode == 0, again.stderr

    def contents(name):
        rows = [rec.decode_payloads(orjson.loads(line)) for line in (tmp_path / name).read_bytes().splitlines()]
        return {r["key"]: (r.get("files"), r["status"], r["row"], r.get("caption")) for r in rows}

    a, b = contents("a.jsonl"), contents("b.jsonl")
    assert a == b
    assert len(a) == 9
    assert {row: files for files, status, row, _ in a.values() if status == "success"} == \
        {row: r["files"] for row, r in successes(batch).items()}
    for shard in ("00000", "00001", "00002"):
        assert orjson.loads((tmp_path / "b" / f"{shard}_stats.json").read_bytes())["fingerprint"] == \
            orjson.loads((tmp_path / "a" / f"{shard}_stats.json").read_bytes())["fingerprint"]


@pytest.mark.parametrize("output_format", ["webdataset", "files", "tfrecord"])
def test_keep_failed_writes_the_json_of_failed_rows(tmp_path, output_format):
    batch = records(3)
    stats = list(write(batch, str(tmp_path), WriteOptions(output_format=output_format, keep_failed=True,
                                                                 number_sample_per_shard=10)))
    assert stats[0]["samples"] == 3 and stats[0]["successes"] == 2
    if output_format == "webdataset":
        names = tarfile.open(tmp_path / "00000.tar").getnames()
        assert "000002.json" in names and "000002.jpg" not in names
    elif output_format == "files":
        assert orjson.loads((tmp_path / "00000" / "000002.json").read_bytes())["status"] == "failed_to_download"
    else:
        assert len(read_tfrecord_checked(tmp_path / "00000.tfrecord")) == 3


@pytest.mark.parametrize("output_format", FORMATS)
def test_a_shard_without_successes_still_gets_all_its_files(tmp_path, output_format):
    failed = [{"url": "u", "status": "failed_to_download", "error_kind": "dns", "error_message": "no host"}]
    list(write(failed, str(tmp_path), WriteOptions(output_format=output_format)))
    data = {"webdataset": "00000.tar", "files": "00000", "parquet": "00000.parquet", "tfrecord": "00000.tfrecord"}
    assert (tmp_path / data[output_format]).exists()
    assert (tmp_path / "00000_stats.json").exists() and (tmp_path / "00000.parquet").exists()
    if output_format == "webdataset":
        listing = subprocess.run(["tar", "-tvf", str(tmp_path / "00000.tar")], capture_output=True, check=True)
        assert listing.stdout == b""


def test_index_lists_every_finished_tar_with_its_sample_count(tmp_path):
    list(write(records(7), str(tmp_path), WriteOptions(number_sample_per_shard=3, index=True)))
    index = orjson.loads((tmp_path / "shardindex.json").read_bytes())
    assert index["__kind__"] == "wids-shard-index-v1" and index["wids_version"] == 1
    for entry in index["shardlist"]:
        with tarfile.open(tmp_path / entry["url"]) as tar:
            keys = {name.split(".")[0] for name in tar.getnames()}
        assert entry["nsamples"] == len(keys)
    assert [e["url"] for e in index["shardlist"]] == ["00000.tar", "00001.tar", "00002.tar"]
    with pytest.raises(UsageProblem, match="--index"):
        list(write(records(1), str(tmp_path / "p"), WriteOptions(output_format="parquet", index=True)))


def test_redoing_a_files_shard_replaces_its_folder(tmp_path):
    batch = [{"key": f"0{i}", "shard": 0, "shard_size": 2, "url": f"u{i}", "status": "failed_to_download",
              "error_kind": "dns", "error_message": "x"} for i in range(2)]
    list(write([dict(r) for r in batch], str(tmp_path), WriteOptions(output_format="files")))
    assert list((tmp_path / "00000").iterdir()) == []
    batch[1].update(status="success", files={"jpg": b"data"})
    list(write(batch, str(tmp_path), WriteOptions(output_format="files")))
    assert sorted(p.name for p in (tmp_path / "00000").iterdir()) == ["01.jpg", "01.json"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("key", ["a.b", "..", "a/b", "a\x01b", "a\x7fb", ""])
def test_unsafe_keys_are_bad_input(key):
    with pytest.raises(BadInput, match="invalid key"):
        rec.check({"key": key})


@pytest.mark.parametrize("extension", ["../x", "a/b", ".jpg", "", "j pg"])
def test_unsafe_extensions_are_bad_input(extension):
    with pytest.raises(BadInput, match="invalid file extension"):
        rec.check({"files": {extension: ""}})


def test_bad_input_stops_without_touching_finished_shards(tmp_path, pipeline):
    good = [rec.dumps({"url": f"u{i}", "status": "success", "files": {"jpg": bytes([i])}}) for i in range(5)]
    lines = good[:4] + [b'{"url": "u", "status": "success", "files": {"jpg": "not base64!"}}\n'] + good[4:]
    result = pipeline("a2d-write --number-sample-per-shard 2 out/", input=b"".join(lines))
    assert result.returncode == 3
    assert result.stderr.decode().strip() == "a2d-write: error: <stdin>:5: invalid base64 in files.jpg"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "00000.parquet", "00000.tar", "00000_stats.json", "00001.parquet", "00001.tar", "00001_stats.json"]
    assert len(tarfile.open(tmp_path / "out" / "00001.tar").getnames()) == 4


@pytest.mark.parametrize("output_format", FORMATS)
def test_output_to_s3(s3, s3_server, tmp_path, pipeline, output_format):
    batch = records(5, extensions=("jpg", "png"))
    out = f"s3://test-bucket/{output_format}"
    stats = list(write(batch, out, WriteOptions(output_format=output_format, number_sample_per_shard=3)))
    assert [s["count"] for s in stats] == [3, 2]
    names = sorted(p.rsplit("/", 1)[-1] for p in s3.ls(f"test-bucket/{output_format}"))
    data = {"webdataset": ".tar", "files": "", "parquet": None, "tfrecord": ".tfrecord"}[output_format]
    expected = [f"0000{i}{suffix}" for i in (0, 1) for suffix in (".parquet", "_stats.json")]
    if data is not None:
        expected += [f"0000{i}{data}" for i in (0, 1)]
    assert names == sorted(expected)
    # Read back over S3 by a2d-read in a real pipe.
    env = dict(s3_server.env, FSSPEC_S3_ENDPOINT_URL=s3_server.endpoint)
    result = pipeline(f"a2d-read {out}", env=env)
    assert result.returncode == 0, result.stderr
    back = [rec.decode_payloads(orjson.loads(line)) for line in result.stdout.splitlines()]
    assert {r["row"]: r["files"] for r in back if r["status"] == "success"} == \
        {row: r["files"] for row, r in successes(batch).items()}
    assert len(back) == 5


@pytest.mark.parametrize("output_format", ["files", "parquet", "tfrecord"])
def test_kill_9_then_resume_gives_the_same_dataset_as_a_clean_run(tmp_path, pipeline, output_format):
    import signal
    import time

    from conftest import command_env

    batch = records(12, extensions=("jpg", "png"))
    (tmp_path / "input.jsonl").write_bytes(b"".join(rec.dumps(r) for r in batch))
    shard = "a2d-shard --number-sample-per-shard 5"
    # The writer gets shard 0 whole and part of shard 1, then its input stalls: kill -9 it.
    stalled = subprocess.Popen(
        ["bash", "-c", f"({shard} input.jsonl | head -n 8; sleep 60) | a2d-write --format {output_format} out/"],
        cwd=tmp_path, env=command_env(), start_new_session=True)
    deadline = time.monotonic() + 30
    while not (tmp_path / "out" / "00000_stats.json").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # let it write shard 1's temporary files
    os.killpg(stalled.pid, signal.SIGKILL)
    stalled.wait()
    out = tmp_path / "out"
    assert sorted(p.name for p in out.glob("*_stats.json")) == ["00000_stats.json"]
    assert not (out / "00001.parquet").exists() and not (out / "00001").exists()
    if output_format != "parquet":  # (the parquet format opens its file at the first row group)
        assert [p.name for p in out.iterdir() if p.name.startswith(".00001")]  # the dead run's temporaries

    resumed = pipeline(f"{shard} --skip-done out/ input.jsonl | a2d-write --format {output_format} out/ && "
                       f"{shard} input.jsonl | a2d-write --format {output_format} clean/ && "
                       f"a2d-read out/ > resumed.jsonl && a2d-read clean/ > clean.jsonl")
    assert resumed.returncode == 0, resumed.stderr
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]

    def contents(name):
        rows = [rec.decode_payloads(orjson.loads(line)) for line in (tmp_path / name).read_bytes().splitlines()]
        return sorted((r["key"], r["status"], r["row"], sorted((r.get("files") or {}).items())) for r in rows)

    assert contents("resumed.jsonl") == contents("clean.jsonl")
    assert len(contents("clean.jsonl")) == 12


@pytest.mark.parametrize("name, size", [("000000001.jpg", 70000), ("a" * 100, 0), ("ключ.txt", 5),
                                        ("x.json", 8**11 - 1)])
def test_tar_headers_match_the_standard_tarfile_module(name, size):
    from any2dataset.write.webdataset import _header

    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode, info.uname, info.gname = size, 0, 0o644, "", ""
    assert _header(name, size) == info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict")


def test_tar_member_names_too_long_for_ustar_are_bad_input(tmp_path):
    record = {"key": "k" * 97, "status": "success", "files": {"jpg": b"x"}, "shard": 0, "shard_size": 1}
    with pytest.raises(BadInput, match="too long for a plain ustar header"):
        list(write([record], str(tmp_path), WriteOptions()))
    assert list(tmp_path.iterdir()) == []


def test_tfrecord_written_like_a_tool_has_null_fields_as_empty_bytes(tmp_path):
    from tfrecord import example_pb2

    batch = [{"url": "http://x/0", "caption": None, "status": "success", "error_message": None,
              "files": {"jpg": b"abc"}}]
    for like, expected in ((None, False), ("img2dataset", True)):
        out = tmp_path / str(like)
        list(write(iter([dict(r, files=dict(r["files"])) for r in batch]), str(out),
                   WriteOptions(output_format="tfrecord", like=like, columns=["url", "key", "status", "error_message",
                                                                              "caption"] if like else None)))
        [data] = list(read_tfrecord_checked(out / "00000.tfrecord"))
        example = example_pb2.Example()
        example.ParseFromString(data)
        features = example.features.feature
        assert ("error_message" in features) == expected, like
        if expected:  # as img2dataset's TFRecordSampleWriter: None -> b"", and a txt feature for the caption column
            assert features["error_message"].bytes_list.value[0] == b"" and features["txt"].bytes_list.value[0] == b""
