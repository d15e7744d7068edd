"""a2d-shard: keys, shard sizes, --part, --split, --extend, --skip-done and the changed-input guard."""

import orjson
import pytest

from any2dataset.commands import shard as shard_command
from any2dataset.shard import InputChanged, ShardOptions, shard, split
from any2dataset.write import WriteOptions, write


def urls(n):
    return [{"url": f"http://127.0.0.1/{i}.jpg"} for i in range(n)]


def test_keys_shards_and_exact_sizes():
    out = list(shard(urls(25), ShardOptions(number_sample_per_shard=10)))
    assert [r["shard"] for r in out] == [0] * 10 + [1] * 10 + [2] * 5
    assert [r["shard_size"] for r in out] == [10] * 20 + [5] * 5
    assert out[0]["key"] == "000000" and out[12]["key"] == "000012" and out[24]["key"] == "000024"
    assert all("." not in r["key"] for r in out)
    # The default N gives img2dataset's documented key: shard 1, row 5 -> 000010005.
    many = list(shard(urls(10006)))
    assert many[10005]["key"] == "000010005" and many[10005]["shard"] == 1 and many[10005]["shard_size"] == 6


def test_full_shards_are_not_held_until_the_end():
    pulled = []

    def source():
        for i in range(1000):
            pulled.append(i)
            yield {"url": f"u{i}"}

    stream = shard(source(), ShardOptions(number_sample_per_shard=10))
    first = next(stream)
    assert first["shard_size"] == 10 and len(pulled) <= 11


def test_start_shard_and_oom_shard_count():
    out = list(shard(urls(3), ShardOptions(number_sample_per_shard=100, oom_shard_count=2, start_shard=7)))
    assert [r["key"] for r in out] == ["0700", "0701", "0702"]


@pytest.mark.parametrize("parts", [1, 2, 3, 7])
def test_parts_cover_every_shard_exactly_once(parts):
    seen = []
    for index in range(parts):
        out = shard(urls(95), ShardOptions(number_sample_per_shard=10, part=(index, parts)))
        seen += [r["url"] for r in out]
    assert sorted(seen) == sorted(r["url"] for r in urls(95))


def test_records_with_keys_and_shards_keep_them():
    records = [{"url": "a", "key": "000070003", "shard": 7, "shard_size": 4},
               {"url": "b", "key": "000080000", "shard": 8, "shard_size": 1}]
    assert list(shard([dict(r) for r in records], ShardOptions(part=(0, 2)))) == [records[1]]


def test_split_writes_one_file_per_shard(tmp_path):
    records = shard(urls(25), ShardOptions(number_sample_per_shard=10))
    names = split(records, str(tmp_path / "parts"))
    assert [p.rsplit("/", 1)[1] for p in names] == ["00000.jsonl", "00001.jsonl", "00002.jsonl"]
    lines = (tmp_path / "parts" / "00002.jsonl").read_bytes().splitlines()
    assert [orjson.loads(line)["url"] for line in lines] == [f"http://127.0.0.1/{i}.jpg" for i in range(20, 25)]
    grouped = split(shard(urls(25), ShardOptions(number_sample_per_shard=10)), str(tmp_path / "g"), 2)
    assert [p.rsplit("/", 1)[1] for p in grouped] == ["00000.jsonl", "00002.jsonl"]


def finished_output(tmp_path, n, per_shard, shards_to_finish):
    """An output folder where some shards were written (as if a run was cut short)."""
    out = tmp_path / "out"
    records = [dict(r, status="failed_to_download")
               for r in shard(urls(n), ShardOptions(number_sample_per_shard=per_shard))]
    list(write([r for r in records if r["shard"] in shards_to_finish], str(out), WriteOptions()))
    return out


def test_skip_done_leaves_out_finished_shards(cli, tmp_path):
    out = finished_output(tmp_path, 35, 10, {0, 2})
    lines = "".join(orjson.dumps(r).decode() + "\n" for r in urls(35))
    result = cli(shard_command.main, ["--number-sample-per-shard", "10", "--skip-done", str(out)], input=lines)
    assert result.exit_code == 0, result.stderr
    assert sorted({orjson.loads(line)["shard"] for line in result.stdout.splitlines()}) == [1, 3]
    assert "2 finished shard(s)" in result.stderr


@pytest.mark.parametrize("change", ["new_rows", "other_n", "fewer_rows"])
def test_skip_done_refuses_a_changed_input(cli, tmp_path, change):
    out = finished_output(tmp_path, 35, 10, {0, 3})
    records = urls(35)
    per_shard = 10
    if change == "new_rows":
        records.insert(3, {"url": "http://127.0.0.1/inserted.jpg"})
    elif change == "other_n":
        per_shard = 12
    else:
        records = records[:25]
    lines = "".join(orjson.dumps(r).decode() + "\n" for r in records)
    result = cli(shard_command.main, ["--number-sample-per-shard", str(per_shard), "--skip-done", str(out)],
                 input=lines)
    assert result.exit_code == 2
    assert "changed since" in result.stderr and "use a new output folder" in result.stderr.lower()
    with pytest.raises(InputChanged):
        list(shard(records, ShardOptions(number_sample_per_shard=per_shard,
                                         done={0: orjson.loads((out / "00000_stats.json").read_bytes()),
                                               3: orjson.loads((out / "00003_stats.json").read_bytes())})))


def test_extend_continues_after_the_last_shard(cli, tmp_path):
    out = finished_output(tmp_path, 25, 10, {0, 1, 2})
    (out / ".00003.tar.tmp123").write_bytes(b"")  # hidden leftovers do not count
    result = cli(shard_command.main, ["--number-sample-per-shard", "10", "--extend", str(out)],
                 input='{"url": "http://127.0.0.1/new.jpg"}\n')
    assert orjson.loads(result.stdout)["shard"] == 3


def test_part_must_be_well_formed(cli):
    for bad in ("3/3", "x", "1/0", "-1/2"):
        result = cli(shard_command.main, ["--part", bad], input="")
        assert result.exit_code == 2 and "--part" in result.stderr


def test_records_handed_on_are_not_kept():
    # In one process (the any2dataset command) later stages attach payloads to the very records
    # shard() yields: it must not keep them until its shard is through (it kept 1,000 MB here).
    import tracemalloc

    rows = ({"url": f"http://127.0.0.1/{i}.jpg"} for i in range(1000))
    tracemalloc.start()
    try:
        for record in shard(rows, ShardOptions(number_sample_per_shard=1000)):
            record["files"] = {"jpg": bytes(1_000_000)}  # what a2d-fetch does, then the writer drops it
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20_000_000, f"peak {peak / 1e6:.0f} MB"
