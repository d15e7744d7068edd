"""a2d-write: shards read back by webdataset, GNU tar, pyarrow and DuckDB; atomic and exact."""

import hashlib
import io
import subprocess
import tarfile

import orjson
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
import webdataset as wds

from any2dataset import record as rec
from any2dataset.commands import write as write_command
from any2dataset.errors import BadInput, IncompleteOutput
from any2dataset.write import WriteOptions, write


def sample_records(n, fail_every=3):
    records = []
    for i in range(n):
        if i % fail_every == fail_every - 1:
            records.append({"url": f"http://x/{i}", "status": "failed_to_download", "error_kind": "http_4xx",
                            "error_message": "HTTP 404 Not Found", "http_status": 404, "row": i})
        else:
            records.append({"url": f"http://x/{i}", "caption": f"caption {i}", "status": "success",
                            "files": {"jpg": bytes([i % 256]) * (i + 1)}, "row": i})
    return records


def test_webdataset_shards_read_back_with_webdataset_tar_pyarrow_and_duckdb(tmp_path):
    out = tmp_path / "out"
    stats = list(write(sample_records(10), str(out), WriteOptions(number_sample_per_shard=4)))
    assert [s["count"] for s in stats] == [4, 4, 2]
    assert sorted(p.name for p in out.iterdir()) == [
        "00000.parquet", "00000.tar", "00000_stats.json", "00001.parquet", "00001.tar", "00001_stats.json",
        "00002.parquet", "00002.tar", "00002_stats.json"]

    samples = list(wds.WebDataset(str(out / "0000{0..2}.tar"), shardshuffle=False))
    # N=4 gives one sample digit: shard 1, row 2 is key 000012.
    assert [s["__key__"] for s in samples] == ["000000", "000001", "000003", "000010", "000012", "000013",
                                               "000021"]
    for sample in samples:
        meta = orjson.loads(sample["json"])
        i = meta["row"]
        assert sample["jpg"] == bytes([i % 256]) * (i + 1)
        assert sample["txt"].decode() == f"caption {i}"
        assert meta["key"] == sample["__key__"] and meta["status"] == "success"

    listing = subprocess.run(["tar", "-tvf", str(out / "00000.tar")], capture_output=True, text=True, check=True)
    assert [line.split()[-1] for line in listing.stdout.splitlines()] == [
        "000000.jpg", "000000.json", "000000.txt", "000001.jpg", "000001.json", "000001.txt",
        "000003.jpg", "000003.json", "000003.txt"]
    assert all(line.split()[1] == "0/0" for line in listing.stdout.splitlines())

    table = pq.read_table(out / "00000.parquet")
    assert table.num_rows == 4 and "files" not in table.column_names
    assert table.column("status").to_pylist() == ["success", "success", "failed_to_download", "success"]
    whole = ds.dataset(str(out), format="parquet", exclude_invalid_files=True).to_table()
    assert sorted(whole.column("row").to_pylist()) == list(range(10))  # every row, failures included

    import duckdb

    counts = duckdb.sql(f"select status, count(*) from read_parquet('{out}/*.parquet') group by 1 order by 1")
    assert counts.fetchall() == [("failed_to_download", 3), ("success", 7)]

    stats0 = orjson.loads((out / "00000_stats.json").read_bytes())
    assert stats0["count"] == 4 and stats0["successes"] == 3 and stats0["failed_to_download"] == 1
    assert stats0["status_dict"] == {"success": 3, "HTTP 404 Not Found": 1}
    assert stats0["error_kinds"] == {"http_4xx": 1}
    assert stats0["bytes"] == 1 + 2 + 4
    for field in ("duration", "start_time", "end_time"):
        assert isinstance(stats0[field], float)


def test_tars_are_plain_ustar_and_byte_identical_across_runs(tmp_path):
    digests = []
    for run in ("a", "b"):
        list(write(sample_records(6), str(tmp_path / run), WriteOptions(number_sample_per_shard=10)))
        data = (tmp_path / run / "00000.tar").read_bytes()
        digests.append(hashlib.sha256(data).hexdigest())
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            members = tar.getmembers()
            assert all(m.type == tarfile.REGTYPE and not m.pax_headers for m in members)
            assert {(m.mtime, m.uid, m.gid) for m in members} == {(0, 0, 0)}
        assert data[257:263] == b"ustar\x00"  # POSIX ustar magic in the first header
    assert digests[0] == digests[1]


def test_out_of_order_interleaved_shards_finish_when_complete(tmp_path):
    records = []
    for shard in (3, 4):
        for index in range(3):
            records.append({"key": rec.make_key(shard, index, 10, 5), "shard": shard, "shard_size": 3,
                            "status": "success", "files": {"bin": bytes([shard, index])}})
    shuffled = [records[i] for i in (4, 1, 3, 0, 5, 2)]
    finished = [s["shard"] for s in write(shuffled, str(tmp_path), WriteOptions())]
    assert finished == [4, 3]
    samples = list(wds.WebDataset(str(tmp_path / "00003.tar"), shardshuffle=False))
    assert [s["bin"] for s in samples] == [bytes([3, 1]), bytes([3, 0]), bytes([3, 2])]  # arrival order


def test_incomplete_shards_are_not_published(tmp_path):
    records = [{"key": f"{i}", "shard": 0, "shard_size": 5, "status": "success", "files": {"bin": b"x"}}
               for i in range(3)]
    with pytest.raises(IncompleteOutput, match=r"1 shard\(s\) were complete: 00000 \(3/5 rows\)"):
        list(write(records, str(tmp_path), WriteOptions()))
    assert list(tmp_path.iterdir()) == []  # not even a temporary file


def test_incomplete_output_exits_4_and_keeps_finished_shards(cli, tmp_path):
    lines = b"".join(
        rec.dumps({"key": f"{s}{i}", "shard": s, "shard_size": 2, "status": "success", "files": {"bin": b"x"}})
        for s, i in [(0, 0), (0, 1), (1, 0)])
    result = cli(write_command.main, [str(tmp_path)], input=lines)
    assert result.exit_code == 4
    assert "a2d-write: error: input ended before 1 shard(s) were complete: 00001 (1/2 rows)" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["00000.parquet", "00000.tar", "00000_stats.json"]


@pytest.mark.parametrize(
    "bad, message",
    [({"key": "1", "shard": 0}, "has no shard_size"),
     ({"shard": 0, "shard_size": 2}, "has no key"),
     ({"key": "9", "shard": 0, "shard_size": 3}, "shard_size 2 and 3"),
     ({"key": "0", "shard": 0, "shard_size": 2}, "duplicate key 0 in shard 00000")],
)
def test_inconsistent_shard_fields_are_bad_input(tmp_path, bad, message):
    good = {"key": "0", "shard": 0, "shard_size": 2, "status": "success", "files": {"bin": b"x"}}
    with pytest.raises(BadInput, match=message):
        list(write([good, bad], str(tmp_path), WriteOptions()))
    assert list(tmp_path.iterdir()) == []


def test_metadata_schema_is_the_same_in_every_shard_and_misfits_are_kept(tmp_path):
    records = [{"url": "u0", "n": 1, "status": "failed_to_download"},
               {"url": "u1", "n": "one", "status": "failed_to_download"},
               {"url": "u2", "n": None, "late": [1], "status": "failed_to_download"}]
    list(write(records, str(tmp_path), WriteOptions(number_sample_per_shard=2)))
    first, second = (pq.read_table(tmp_path / f"0000{i}.parquet") for i in (0, 1))
    assert first.schema.field("n").type == second.schema.field("n").type
    assert first.column("n").to_pylist() == [1, None]
    assert orjson.loads(first.column("extra_json")[1].as_py()) == {"n": "one"}
    assert orjson.loads(second.column("extra_json")[0].as_py()) == {"late": [1]}


def test_too_many_open_shards_is_a_clear_error(tmp_path):
    from any2dataset.errors import UsageProblem

    records = [{"key": f"{s}", "shard": s, "shard_size": 2, "status": "success", "files": {"bin": b"x"}}
               for s in range(3)]
    with pytest.raises(UsageProblem, match="more than 2 shards are open at once"):
        list(write(records, str(tmp_path), WriteOptions(max_open_shards=2)))
    assert list(tmp_path.iterdir()) == []


def test_start_shard_numbers_arrival_order_shards(tmp_path):
    stats = list(write(sample_records(3), str(tmp_path), WriteOptions(number_sample_per_shard=10, start_shard=7)))
    assert [s["shard"] for s in stats] == [7]
    assert [s["__key__"] for s in wds.WebDataset(str(tmp_path / "00007.tar"), shardshuffle=False)] == \
        ["000070", "000071"]  # shard 7, rows 0 and 1 (N=10: one sample digit)


def test_clips_count_as_their_source_row_and_the_shard_waits_for_all_of_them(tmp_path):
    def clip(source, index, count):
        return {"key": f"{source}_{index:05d}", "source_key": source, "clip_index": index, "clip_count": count,
                "shard": 0, "shard_size": 2, "status": "success", "files": {"mp4": b"clip"}}

    records = [clip("0000", 0, 2), clip("0000", 1, 2), clip("0001", 0, 3), clip("0001", 1, 3)]
    writer_output = write(iter(records + [clip("0001", 2, 3)]), str(tmp_path), WriteOptions())
    stats = list(writer_output)
    assert [s["count"] for s in stats] == [5]  # not finished after the second source's first clip
    table = pq.read_table(tmp_path / "00000.parquet")
    assert table.column("shard_size").to_pylist() == [2] * 5  # source rows, as a2d-shard gave them
    with pytest.raises(IncompleteOutput):
        list(write(iter(records), str(tmp_path / "short"), WriteOptions()))  # a clip missing: not published
