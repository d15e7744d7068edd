"""any2dataset.loader.Dataset: every sample once per epoch across ranks and workers, seeded
orders, exact resume, failures skipped and counted, random access, a2d datasets as sources,
and the disk cache serving a second epoch. Downloads go to the local fault server."""

import itertools
from collections import Counter

import pytest

from any2dataset.errors import UsageProblem
from any2dataset.loader.dataset import Dataset
from servers import body_for


@pytest.fixture
def url_list(http_server, tmp_path):
    """40 rows: 36 good files, 4 that fail (404), with captions."""
    path = tmp_path / "urls.csv"
    rows = []
    for i in range(40):
        url = http_server.url(f"loader/{i}.bin", size=100 + i) if i % 10 != 7 else http_server.url(
            f"loader/missing{i}", status=404)
        rows.append(f"{url},caption {i}")
    path.write_text("url,caption\n" + "\n".join(rows) + "\n")
    return path


def keys(samples) -> list[str]:
    return [sample["__key__"] for sample in samples]


def test_samples_carry_payload_caption_and_metadata_and_failures_are_counted(url_list):
    dataset = Dataset(str(url_list), shuffle=False)
    samples = list(dataset)
    assert len(samples) == 36 and dataset.counts["success"] == 36 and dataset.counts["failed_to_download"] == 4
    first = samples[0]
    assert first["bin"] == body_for("/loader/0.bin", 100) and first["txt"] == "caption 0"
    assert first["json"]["url"] == first["__url__"] and first["json"]["status"] == "success"
    assert keys(samples) == [f"{i:012d}" for i in range(40) if i % 10 != 7]  # the list's order


def test_every_sample_once_per_epoch_across_two_ranks_and_two_workers(url_list):
    for epoch in (0, 1):
        seen = []
        for rank, worker in itertools.product(range(2), range(2)):
            dataset = Dataset(str(url_list), seed=3, rank=rank, world_size=2).for_worker(worker, 2)
            dataset.set_epoch(epoch)
            seen += keys(dataset)
        assert sorted(seen) == sorted(f"{i:012d}" for i in range(40) if i % 10 != 7), epoch
        assert len(seen) == len(set(seen))


def test_orders_are_seeded_per_epoch_and_even_counts_for_ddp(url_list):
    dataset = Dataset(str(url_list), seed=1)
    first, second = dataset.order(0), dataset.order(1)
    assert first != second and sorted(first) == list(range(40))
    assert Dataset(str(url_list), seed=1).order(0) == first and Dataset(str(url_list), seed=2).order(0) != first
    assert Dataset(str(url_list), shuffle=False).order(5) == list(range(40))
    sizes = {even: [len(Dataset(str(url_list), rank=r, world_size=3, even=even).positions()) for r in range(3)]
             for even in (None, "drop", "pad")}
    assert sizes == {None: [14, 13, 13], "drop": [13, 13, 13], "pad": [14, 14, 14]}
    with pytest.raises(UsageProblem):
        Dataset(str(url_list), even="trim")


def test_resume_mid_epoch_gives_exactly_the_remaining_sequence(url_list):
    whole = keys(Dataset(str(url_list), seed=5))
    interrupted = Dataset(str(url_list), seed=5)
    taken = list(itertools.islice(iter(interrupted), 11))
    state = interrupted.state_dict()
    resumed = Dataset(str(url_list), seed=5)
    resumed.load_state_dict(state)
    assert keys(taken) + keys(resumed) == whole
    with pytest.raises(UsageProblem, match="another index or seed"):
        Dataset(str(url_list), seed=6).load_state_dict(state)


def test_a_failing_transform_skips_the_sample_and_is_counted(url_list):
    def transform(sample):
        if sample["__key__"].endswith("3"):
            raise ValueError("bad")
        return {"size": len(sample["bin"])}

    dataset = Dataset(str(url_list), shuffle=False, transform=transform)
    sizes = [sample["size"] for sample in dataset]
    assert len(sizes) == 32 and dataset.counts["transform_error: ValueError"] == 4


def test_random_access_during_iteration(url_list):
    dataset = Dataset(str(url_list), seed=9)
    iterator = iter(dataset)
    next(iterator)
    assert dataset[12]["bin"] == body_for("/loader/12.bin", 112)  # while the epoch is under way
    with pytest.raises(LookupError):
        dataset[7]  # a 404
    assert len(list(iterator)) == 35  # the iteration goes on, none lost


def test_the_cache_serves_the_second_epoch_and_a_restart(url_list, http_server, tmp_path):
    cache = tmp_path / "cache"
    dataset = Dataset(str(url_list), cache_dir=str(cache), cache_budget="10MB")
    list(dataset)
    before = len(http_server.requests_for_prefix("/loader/"))
    again = Dataset(str(url_list), cache_dir=str(cache), cache_budget="10MB")  # a restart
    samples = list(again)
    assert len(samples) == 36 and again.counts["cache_hit"] == 36
    downloads = Counter(r["path"] for r in http_server.requests_for_prefix("/loader/")[before:])
    assert all("missing" in path for path in downloads)  # only the failures were asked again


def test_an_a2d_dataset_is_a_source_too(url_list, tmp_path):
    from any2dataset.fetch import fetch
    from any2dataset.read import ReadOptions, read
    from any2dataset.shard import ShardOptions, shard
    from any2dataset.write import WriteOptions, write

    records = fetch(shard(read([str(url_list)], ReadOptions()), ShardOptions(number_sample_per_shard=16)))
    list(write(records, str(tmp_path / "out"), WriteOptions(output_format="webdataset", number_sample_per_shard=16)))
    samples = list(Dataset(str(tmp_path / "out"), shuffle=False))
    assert len(samples) == 36 and sorted(s["bin"] for s in samples) == sorted(
        body_for(f"/loader/{i}.bin", 100 + i) for i in range(40) if i % 10 != 7)


def test_the_training_example_runs(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    example = Path(__file__).resolve().parent.parent / "examples" / "train_from_list.py"
    done = subprocess.run([sys.executable, str(example), str(tmp_path / "cache")], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split(",")[0] for line in lines[:2]] == ["epoch 0: 8 samples", "epoch 1: 8 samples"]
    assert lines[0] != lines[1]  # another order each epoch
    assert lines[2] == "cache: 8 images kept for the next epoch"


def test_mixed_datasets_keep_their_weights_and_resume_exactly(http_server, tmp_path):
    from any2dataset.loader.mixed import MixedDataset

    lists = []
    for name, count in (("big", 120), ("small", 60)):
        path = tmp_path / f"{name}.txt"
        path.write_text("".join(http_server.url(f"mixed/{name}/{i}.bin", size=20) + "\n" for i in range(count)))
        lists.append(str(path))

    def make():
        return MixedDataset([Dataset(lists[0], seed=1), Dataset(lists[1], seed=2)], weights=[3, 1], seed=4,
                            until="first")

    whole = [sample["__url__"] for sample in make()]
    big = sum("/big/" in url for url in whole)
    assert 0.65 < big / len(whole) < 0.85, big / len(whole)  # 3:1, until the first list ends
    assert [sample["__url__"] for sample in make()] == whole  # seeded
    interrupted = make()
    taken = [sample["__url__"] for sample in itertools.islice(iter(interrupted), 37)]
    state = interrupted.state_dict()
    resumed = make()
    resumed.load_state_dict(state)
    assert taken + [sample["__url__"] for sample in resumed] == whole


def test_transform_presets_decode_images_audio_and_video(tmp_path):
    import io
    import shutil
    import subprocess

    Image = pytest.importorskip("PIL.Image")
    from any2dataset.loader import transforms

    picture = io.BytesIO()
    Image.new("RGB", (80, 40), (200, 10, 10)).save(picture, "PNG")
    sample = {"__key__": "k", "png": picture.getvalue(), "json": {}}
    assert transforms.image(32, "border")(sample)["image"].size == (32, 32)
    assert transforms.image(32, "center_crop", to="array")(sample)["image"].shape == (32, 32, 3)
    assert transforms.image()(sample)["image"].size == (80, 40)
    with pytest.raises(ValueError, match="no payload"):
        transforms.image()({"__key__": "k", "txt": "words"})
    if not shutil.which("ffmpeg"):
        pytest.skip("ffmpeg is not on PATH")
    video = tmp_path / "v.mp4"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i",
                    "testsrc=duration=2:size=64x48:rate=10", "-f", "lavfi", "-i", "sine=duration=2", "-shortest",
                    "-pix_fmt", "yuv420p", str(video)], check=True)
    clip = {"__key__": "v", "mp4": video.read_bytes()}
    assert transforms.frames(fps=5, size=16)(clip)["frames"].shape[1:] == (16, 16, 3)
    assert 9 <= transforms.frames(fps=5, size=16)(clip)["frames"].shape[0] <= 11
    sound = transforms.audio(rate=8000)(clip)["audio"]
    assert sound.shape[0] == 1 and abs(sound.shape[1] - 16000) < 800
    with pytest.raises(ValueError, match="ffmpeg"):
        transforms.frames()({"__key__": "x", "mp4": b"not a video"})
