"""The loader's lazy index (loader/index.py) and its epochs (loader/order.py): a list spilled in
chunks while the first epoch runs, shared through index_dir and taken over when its writer is
gone; dataset shards dealt out by rank and worker; every sample once per epoch, equal counts
per rank, exact resume across chunk windows and shuffle buffers; S3 sources on moto's server."""

import fcntl
import itertools
import os
import time
from collections import Counter

import orjson
import pytest

from any2dataset.errors import BadInput
from any2dataset.loader.dataset import Dataset
from any2dataset.loader.index import Index
from any2dataset.loader.order import Part, _quota
from any2dataset.read import ReadOptions
from servers import body_for

PARTS = [(rank, worker) for rank in range(2) for worker in range(2)]


def keys(samples) -> list[str]:
    return [sample["__key__"] for sample in samples]


@pytest.fixture
def long_list(http_server, tmp_path):
    """103 URLs (every 17th a 404), to be spilled in chunks of 10."""
    path = tmp_path / "urls.txt"
    path.write_text("".join((http_server.url(f"lazy/{i}.bin", size=10 + i) if i % 17 != 5
                             else http_server.url(f"lazy/missing{i}", status=404)) + "\n" for i in range(103)))
    return path


GOOD = sorted(f"{i:012d}" for i in range(103) if i % 17 != 5)


def shares(make, epoch: int) -> dict[tuple[int, int], list[str]]:
    out = {}
    for rank, worker in PARTS:
        dataset = make(rank).for_worker(worker, 2)
        dataset.set_epoch(epoch)
        out[rank, worker] = keys(dataset)
    return out


def test_a_chunked_list_gives_every_sample_once_per_epoch_across_ranks_and_workers(long_list):
    def make(rank):
        return Dataset(str(long_list), seed=7, rank=rank, world_size=2, chunk_rows=10, shuffle_window=2)

    orders = []
    for epoch in (0, 1, 2):
        seen = shares(make, epoch)
        everything = [key for share in seen.values() for key in share]
        assert sorted(everything) == GOOD, epoch
        orders.append(make(0).order(epoch))
    assert all(sorted(order) == list(range(103)) for order in orders)
    # epoch 0 follows the list by windows of 2 chunks; later epochs take the chunks in a seeded order
    assert sorted(orders[0][:20]) == list(range(20))
    assert orders[1] != orders[2] and sorted(orders[1][:20]) != list(range(20))
    assert make(0).order(1) == orders[1]  # seeded
    fixed = Dataset(str(long_list), shuffle=False, chunk_rows=10)
    assert fixed.order(0) == fixed.order(3) == list(range(103))


def test_even_counts_per_rank_with_chunks(long_list):
    for even, expected in ((None, [35, 34, 34]), ("drop", [34, 34, 34]), ("pad", [35, 35, 35])):
        sizes = [len(Dataset(str(long_list), rank=r, world_size=3, even=even, chunk_rows=10).positions(epoch))
                 for r in range(3) for epoch in (0, 1)]
        assert sizes == [size for size in expected for _ in (0, 1)], even
    padded = [Dataset(str(long_list), rank=r, world_size=3, even="pad", chunk_rows=10).positions(1) for r in range(3)]
    assert len({p for share in padded for p in share}) == 103  # every row, and two repeated


@pytest.mark.parametrize("epoch", [0, 1])
def test_resume_across_chunk_windows_gives_exactly_the_rest(long_list, epoch):
    def make():
        dataset = Dataset(str(long_list), seed=2, ordered=True, chunk_rows=10, shuffle_window=2)
        dataset.set_epoch(epoch)
        return dataset

    whole = keys(make())
    for stop in (1, 29, 60):
        interrupted = make()
        taken = keys(itertools.islice(iter(interrupted), stop))
        resumed = make()
        resumed.load_state_dict(interrupted.state_dict())
        assert taken + keys(resumed) == whole, stop


def test_the_first_samples_come_before_a_long_list_is_read(http_server, tmp_path):
    url = http_server.url("lazy/big.bin", size=50)
    path = tmp_path / "big.txt"
    with open(path, "w") as file:
        for i in range(400_000):
            file.write(f"{url}&n={i}\n")
    dataset = Dataset(str(path), shuffle=False, chunk_rows=1000, shuffle_window=1, read_ahead=4)
    started = time.monotonic()
    first = next(iter(dataset))
    assert first["__key__"] == "000000000000" and time.monotonic() - started < 10
    assert not dataset.index.complete()  # still being spilled
    assert len(dataset) == 400_000  # waits for the whole list
    assert orjson.loads(dataset.index.row(399_999))["url"] == f"{url}&n=399999"


def test_index_dir_is_shared_survives_a_restart_and_is_taken_over_from_a_dead_writer(long_list, tmp_path):
    options = ReadOptions()
    shared = tmp_path / "index"
    writer = Index([str(long_list)], options, str(shared), chunk_rows=10)
    follower = Index([str(long_list)], options, str(shared), chunk_rows=10)
    assert writer.folder == follower.folder
    assert len(writer) == 103
    assert follower.rows(10) == writer.rows(10) and not follower._builder.building
    again = Index([str(long_list)], options, str(shared), chunk_rows=10)  # a restart: nothing to read
    assert len(again) == 103 and again._builder is not None and again._builder._lock_file is None

    # a writer that died half-way: chunks 0-3 on disk, no manifest, its lock released
    dead = Index([str(long_list)], options, str(tmp_path / "dead"), chunk_rows=10)
    for number in range(4):
        (tmp_path / "dead" / dead.signature / f"chunk-{number:08d}.jsonl").write_bytes(
            b"\n".join(writer.rows(number)) + b"\n")
    lock = open(os.path.join(dead.folder, ".lock"), "a+b")
    fcntl.flock(lock, fcntl.LOCK_EX)  # another process writes for now
    follower = Index([str(long_list)], options, str(tmp_path / "dead"), chunk_rows=10)
    assert follower.rows(2) == writer.rows(2)  # what is there is served at once
    fcntl.flock(lock, fcntl.LOCK_UN)  # ... and it dies
    lock.close()
    assert [follower.rows(n) for n in range(11)] == [writer.rows(n) for n in range(11)]
    assert len(follower) == 103

    edited = tmp_path / "urls2.txt"  # another list: another index under the same folder
    edited.write_text(long_list.read_text().replace("/lazy/0.bin", "/lazy/zero.bin"))
    assert Index([str(edited)], options, str(shared), chunk_rows=10).folder != writer.folder


def test_a_bad_row_in_the_list_is_an_error_of_the_iteration_not_a_hang(http_server, tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes("".join(f"{http_server.url(f'bad/{i}.bin', size=5)}\n" for i in range(30)).encode()
                     + b"\xff not utf-8\n")
    dataset = Dataset(str(path), shuffle=False, chunk_rows=10)
    with pytest.raises(BadInput, match="bad.txt:31: not valid utf-8"):
        list(dataset)


@pytest.fixture
def shards(long_list, tmp_path):
    """The long list written as webdataset shards of 9 (failures only in the metadata)."""
    from any2dataset.fetch import fetch
    from any2dataset.read import read
    from any2dataset.shard import ShardOptions, shard
    from any2dataset.write import WriteOptions, write

    records = fetch(shard(read([str(long_list)], ReadOptions()), ShardOptions(number_sample_per_shard=9)))
    list(write(records, str(tmp_path / "out"), WriteOptions(output_format="webdataset", number_sample_per_shard=9)))
    return str(tmp_path / "out")


@pytest.fixture
def shard_keys(shards):
    from any2dataset.read import read

    found = sorted(record["key"] for record in read([shards]) if record.get("status") == "success")
    assert len(found) == len(GOOD)
    return found


def test_dataset_shards_are_split_by_rank_and_worker_every_sample_once(shards, shard_keys):
    def make(rank, **options):
        return Dataset(shards, seed=1, rank=rank, world_size=2, shuffle_buffer=5, **options)

    dataset = make(0)
    assert dataset.index.shards and dataset.index.chunk_count() == 12
    for epoch in (0, 1):
        seen = shares(make, epoch)
        assert sorted(key for share in seen.values() for key in share) == shard_keys, epoch
    assert shares(make, 0) == shares(make, 0) and shares(make, 0) != shares(make, 1)  # seeded, per epoch
    for even in ("drop", "pad"):
        per_rank = [len(keys(make(rank, even=even).for_worker(worker, 2))) + len(
            keys(make(rank, even=even).for_worker(1 - worker, 2))) for rank, worker in ((0, 0), (1, 0))]
        assert per_rank[0] == per_rank[1], (even, per_rank)
    few = [keys(Dataset(shards, seed=1, rank=rank, world_size=16)) for rank in range(16)]  # 12 shards, 16 ranks
    assert sorted(itertools.chain(*few)) == shard_keys


def test_dataset_shards_resume_exactly_and_serve_random_access(shards, shard_keys):
    whole = keys(Dataset(shards, seed=4, shuffle_buffer=7))
    interrupted = Dataset(shards, seed=4, shuffle_buffer=7)
    taken = keys(itertools.islice(iter(interrupted), 40))
    resumed = Dataset(shards, seed=4, shuffle_buffer=7)
    resumed.load_state_dict(interrupted.state_dict())
    assert taken + keys(resumed) == whole and sorted(whole) == shard_keys
    from any2dataset.read import read

    rows = list(read([shards]))  # failures are rows of the dataset too (its metadata)
    dataset = Dataset(shards, shuffle=False)
    assert len(dataset) == len(rows) == 103
    failed = next(i for i, row in enumerate(rows) if row["status"] != "success")
    assert [dataset[i]["__key__"] for i in (0, failed + 1, 102)] == [rows[i]["key"] for i in (0, failed + 1, 102)]
    with pytest.raises(LookupError):
        dataset[failed]


def test_quotas_give_every_rank_as_many():
    counts = [5, 3, 4, 0, 9, 1]  # 3 ranks x 2 workers
    for even, target in (("drop", 4), ("pad", 10)):
        totals = [sum(_quota(counts, Part(rank, 3, worker, 2), even) for worker in range(2)) for rank in range(3)]
        assert totals == [target] * 3, even
    assert _quota(counts, Part(1, 3, 1, 2), "pad") == 0  # an empty share repeats nothing


def test_lists_and_shards_on_s3(s3, s3_server, http_server, shards, shard_keys):
    for name in os.listdir(shards):
        s3.put(os.path.join(shards, name), f"test-bucket/data/{name}")
    s3.pipe("test-bucket/lists/urls.csv", ("url,caption\n" + "".join(
        f"{http_server.url(f's3list/{i}.bin', size=20)},caption {i}\n" for i in range(12))).encode())
    from_list = list(Dataset("s3://test-bucket/lists/urls.csv", caption_col="caption", chunk_rows=5, seed=3))
    assert sorted(sample["txt"] for sample in from_list) == sorted(f"caption {i}" for i in range(12))
    assert Counter(len(sample["bin"]) for sample in from_list) == {20: 12}
    from_shards = Dataset("s3://test-bucket/data", rank=1, world_size=2)
    other = Dataset("s3://test-bucket/data", rank=0, world_size=2)
    assert from_shards.index.shards and sorted(keys(from_shards) + keys(other)) == shard_keys
    local = {sample["__url__"]: sample["bin"] for sample in Dataset(shards)}
    remote = {sample["__url__"]: sample["bin"] for sample in Dataset("s3://test-bucket/data")}
    assert remote == local and local[http_server.url("lazy/3.bin", size=13)] == body_for("/lazy/3.bin", 13)


def test_a_folder_of_files_is_its_own_index(tmp_path):
    folder = tmp_path / "pictures"
    (folder / "sub").mkdir(parents=True)
    contents = {}
    for i in range(10):
        path = folder / ("sub" if i % 3 else "") / f"{i}.jpg"
        path.write_bytes(bytes([i]) * (i + 1))
        contents[str(path)] = path.read_bytes()
    samples = [sample for rank in range(2) for sample in Dataset(str(folder), input_format="raw", seed=1, rank=rank,
                                                                world_size=2)]
    assert {sample["__url__"]: sample["jpg"] for sample in samples} == contents and len(samples) == 10
    dataset = Dataset(str(folder), input_format="raw", shuffle=False)
    assert len(dataset) == 10 and dataset[4]["jpg"] == contents[dataset[4]["__url__"]]
