"""`any2dataset.video2dataset()` and `a2d-video2dataset`: video2dataset's arguments and config
(a dict, a YAML file) work, and what cannot work here is refused before any work, with the
reason. The outputs compared with the real video2dataset's: test_video2dataset_e2e.py."""

import json
import shutil
import subprocess
import tarfile
import urllib.request

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import any2dataset
from any2dataset.errors import UsageProblem
from servers import serve_folder

if not (shutil.which("ffmpeg") and shutil.which("ffprobe")):
    pytest.skip("ffmpeg and ffprobe are not on PATH (apt-get install ffmpeg)", allow_module_level=True)

FFMPEG = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """v0.mp4 .. v2.mp4 (3, 4, 5 s; 160x120 landscape, with sound) and tall.mp4 (120x160),
    served on 127.0.0.1; returns the base URL."""
    folder = tmp_path_factory.mktemp("videos")
    for index, (seconds, size) in enumerate([(3, "160x120"), (4, "160x120"), (5, "160x120")]):
        subprocess.run(FFMPEG + ["-f", "lavfi", "-i", f"testsrc=duration={seconds}:size={size}:rate=10", "-f", "lavfi",
                                 "-i", f"sine=duration={seconds}", "-shortest", "-c:v", "libx264", "-preset",
                                 "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", str(folder / f"v{index}.mp4")],
                       check=True)
    with serve_folder(folder) as base:
        yield base


def csv_list(path, base: str, count: int = 3) -> str:
    path.write_text("url,caption,lang\n" + "".join(f"{base}/v{i % 3}.mp4,caption {i},l{i}\n" for i in range(count)))
    return str(path)


def probe(path) -> dict:
    done = subprocess.run(["ffprobe", "-loglevel", "error", "-print_format", "json", "-show_format", "-show_streams",
                           str(path)], capture_output=True, check=True)
    return json.loads(done.stdout)


@pytest.mark.parametrize("arguments, reason", [
    ({"stage": "optical_flow"}, "stage='optical_flow' is not supported: run the model over a dataset with the stages"),
    ({"stage": "subset"}, "a2d-read DATASET | a2d-subsample"),
    ({"config": "caption"}, "config 'caption' is not supported: it captions with a video BLIP model and an LLM"),
    ({"config": {"subsampling": {"WhisperSubsampler": {"args": {"compute_type": "int8"}}}}},
     "WhisperSubsampler.args.compute_type 'int8' is not supported"),
    ({"config": {"subsampling": {"OpticalFlowSubsampler": {"args": {"detector": "raft"}}}}},
     "detector 'raft' is not supported"),
    ({"config": {"subsampling": {"CaptionSubsampler": {"args": {"captioner_args": {"video_captioner": "m",
                                                                                    "llm": "l"}}}}}},
     "captioner_args.llm is not supported"),
    ({"config": {"subsampling": {"CaptionSubsampler": {"args": {}}}}}, "captioner_args needs video_captioner"),
    ({"config": {"subsampling": {"WhisperSubsampler": {"args": {"model": "x"}}}}},
     "WhisperSubsampler.args: unknown model"),
    ({"config": {"subsampling": {"CutDetectionSubsampler": {"args": {"cut_detection_mode": "middle"}}}}},
     "cut_detection_mode must be all or longest"),
    ({"config": {"subsampling": {"Blur": {}}}}, "unknown subsampler Blur"),
    ({"config": {"subsampling": {"ClippingSubsampler": {"args": {"min_len": 2}}}}}, "unknown min_len"),
    ({"config": {"distribution": {"distributor": "slurm"}}}, "distributor='slurm' is not supported"),
    ({"config": {"distribution": {"distributor": "dask"}}}, "'dask' is not one of 'multiprocessing', 'ray'"),
    ({"config": {"storage": {"captions_are_subtitles": True}}}, "captions_are_subtitles is not supported"),
    ({"config": {"store": {}}}, "unknown section(s) store"),
    ({"config": {"reading": {"sampler": "x"}}}, "reading.sampler is not supported"),
    ({"config": {"subsampling": {"ResolutionSubsampler": {"args": {"resize_mode": "crop", "video_size": 64}}}}},
     "resize_mode 'crop' is not supported"),
    ({"enable_wandb": True}, "enable_wandb is not supported"),
    ({"max_shard_retry": -1}, "max_shard_retry must be an integer of at least 0, not -1"),
    ({"incremental_mode": "extend"}, "incremental_mode must be incremental or overwrite"),
    ({"encode_formats": {"video": "webm"}}, "encode_formats video='webm' is not supported"),
    ({"encode_formats": {"image": "jpg"}}, "encode_formats must map video and/or audio"),
    ({"bbox_col": "box"}, "unknown argument(s): bbox_col"),
    ({"config": "missing.yaml"}, "config 'missing.yaml': no such file"),
    ({"config": {"storage": {"number_sample_per_shard": "abc"}}},
     "config: storage.number_sample_per_shard must be an integer of at least 1, not 'abc'"),
    ({"config": {"reading": {"timeout": -1}}}, "config: reading.timeout must be a number"),
    ({"config": {"distribution": {"thread_count": True}}}, "config: distribution.thread_count must be an integer"),
    ({"config": {"subsampling": {"FrameSubsampler": {"args": {}}}}}, "FrameSubsampler.args needs frame_rate"),
    ({"config": {"subsampling": {"ClippingSubsampler": 5}}}, "ClippingSubsampler must be a mapping"),
    ({"clip_col": "c", "config": {"subsampling": {"ClippingSubsampler": {"args": {"max_length": "x"}}}}},
     "ClippingSubsampler.args.max_length must be a number"),
])
def test_what_cannot_work_is_refused_before_any_work_with_the_reason(tmp_path, videos, arguments, reason):
    out = tmp_path / "out"
    with pytest.raises(UsageProblem) as refused:
        any2dataset.video2dataset(url_list=csv_list(tmp_path / "list.csv", videos), output_folder=str(out),
                                  **arguments)
    assert reason in str(refused.value)
    assert not out.exists()


def test_defaults_and_positional_arguments_as_video2dataset(tmp_path, videos, monkeypatch):
    """No output_folder: `dataset`; csv is the default input format; 1000 samples a shard,
    so keys have 3 + 5 digits; captions only with caption_col; the metadata has the list's
    kept columns, then url, key, status, error_message."""
    monkeypatch.chdir(tmp_path)
    listed = csv_list(tmp_path / "videos", videos)  # no .csv in the name: csv is the default
    report = any2dataset.video2dataset(listed, save_additional_columns=["lang"], quiet=True)
    assert report["statuses"]["success"] == 3
    names = sorted(path.name for path in (tmp_path / "dataset" / "00000").iterdir())
    assert names == [f"0000000{i}.{ext}" for i in range(3) for ext in ("json", "mp4")]
    table = pq.read_table(tmp_path / "dataset" / "00000.parquet")
    assert table.column_names == ["lang", "url", "key", "status", "error_message"]
    assert sorted(table.column("key").to_pylist()) == ["00000000", "00000001", "00000002"]  # as they finished
    sample = json.loads((tmp_path / "dataset" / "00000" / "00000001.json").read_text())
    assert list(sample.items()) == [("lang", "l1"), ("url", f"{videos}/v1.mp4"), ("key", "00000001"),
                                    ("status", "success"), ("error_message", None), ("yt_meta_dict", None)]
    with urllib.request.urlopen(f"{videos}/v1.mp4") as reply:  # as served: no option asked for a re-encode
        assert (tmp_path / "dataset" / "00000" / "00000001.mp4").read_bytes() == reply.read()


def test_a_yaml_config_sets_shards_clips_and_resolution(tmp_path, videos):
    """storage.number_sample_per_shard, ClippingSubsampler (min_length, max_length, first) and
    ResolutionSubsampler from a YAML file, as video2dataset reads them; clips from a parquet
    list column are samples keyed KEY_00000, ... with their own span in `clips`."""
    config = tmp_path / "config.yaml"
    config.write_text("subsampling:\n"
                      "  ClippingSubsampler:\n    args:\n      min_length: 0.5\n      max_length: 1.0\n"
                      "      max_length_strategy: first\n"
                      "  ResolutionSubsampler:\n    args:\n      video_size: 64\n      resize_mode: scale,crop,pad\n"
                      "storage:\n  number_sample_per_shard: 2\n  oom_shard_count: 4\n"
                      "distribution:\n  processes_count: 2\n  thread_count: 4\n")
    rows = pa.table({"link": [f"{videos}/v{i}.mp4" for i in range(3)], "text": ["a", "b", "c"],
                     "spans": [[[0.0, 2.5], [2.6, 2.8]], [[1.0, 1.7]], [[0.0, 0.3]]]})
    pq.write_table(rows, tmp_path / "list.parquet")
    any2dataset.video2dataset(url_list=str(tmp_path / "list.parquet"), input_format="parquet", url_col="link",
                              caption_col="text", clip_col="spans", output_format="webdataset",
                              output_folder=str(tmp_path / "out"), config=str(config), quiet=True)
    with tarfile.open(tmp_path / "out" / "0000.tar") as tar:
        members = sorted(tar.getnames())
        tar.extractall(tmp_path / "members", filter="data")
    # v0: [0, 2.5] -> its first 1 s window; [2.6, 2.8] is under min_length. v1: [1, 1.7].
    assert members == [f"{key}.{ext}" for key in ("00000_00000", "00001_00000") for ext in ("json", "mp4", "txt")]
    first = json.loads((tmp_path / "members" / "00000_00000.json").read_text())
    assert list(first.items()) == [("caption", "a"), ("url", f"{videos}/v0.mp4"), ("key", "00000_00000"),
                                   ("status", "success"), ("error_message", None), ("yt_meta_dict", None),
                                   ("clips", [[0.0, 1.0]])]  # video2dataset's order: the clip's span last
    assert json.loads((tmp_path / "members" / "00001_00000.json").read_text())["clips"] == [[1.0, 1.7]]
    video = next(s for s in probe(tmp_path / "members" / "00000_00000.mp4")["streams"] if s["codec_type"] == "video")
    assert (video["width"], video["height"]) == (64, 64)
    # v2: its only span is under min_length: failed_to_subsample, in shard 1 (2 a shard: keys of 1 + 4 digits)
    second = pq.read_table(tmp_path / "out" / "0001.parquet").to_pylist()
    assert [(row["key"], row["status"]) for row in second] == [("00010", "failed_to_subsample")]
    assert "no clip longer than 0.5 s" in second[0]["error_message"]
    # _stats.json counts source rows, as video2dataset does, and has its bytes_downloaded
    stats = [json.loads((tmp_path / "out" / f"000{shard}_stats.json").read_text()) for shard in (0, 1)]
    assert [(s["count"], s["successes"], s["failed_to_subsample"]) for s in stats] == [(2, 2, 0), (1, 0, 1)]
    served = [len(urllib.request.urlopen(f"{videos}/v{i}.mp4").read()) for i in range(3)]
    # the downloads, before clipping, of the rows that were not download failures
    assert [s["bytes_downloaded"] for s in stats] == [served[0] + served[1], served[2]]
    theirs = ["count", "successes", "failed_to_download", "failed_to_subsample", "duration", "bytes_downloaded",
              "start_time", "end_time", "status_dict"]  # video2dataset's keys, in its order, among ours
    assert [name for name in stats[0] if name in theirs] == theirs
    summary = subprocess.run(["a2d-stats", str(tmp_path / "out")], capture_output=True, text=True, timeout=60)
    assert summary.returncode == 0 and "warning" not in summary.stderr, summary.stderr  # no false disagreement


def test_encode_formats_with_audio_writes_both_or_the_audio_only(tmp_path, videos):
    listed = csv_list(tmp_path / "list.csv", videos, count=1)
    any2dataset.video2dataset(url_list=listed, output_folder=str(tmp_path / "both"), quiet=True,
                              encode_formats={"video": "mp4", "audio": "m4a"})
    any2dataset.video2dataset(url_list=listed, output_folder=str(tmp_path / "audio"), quiet=True,
                              encode_formats={"audio": "m4a"})
    assert sorted(p.suffix for p in (tmp_path / "both" / "00000").iterdir()) == [".json", ".m4a", ".mp4"]
    assert sorted(p.suffix for p in (tmp_path / "audio" / "00000").iterdir()) == [".json", ".m4a"]
    kinds = {s["codec_type"] for s in probe(tmp_path / "both" / "00000" / "00000000.m4a")["streams"]}
    assert kinds == {"audio"}


def test_the_command_takes_video2dataset_flags_and_an_inline_config(tmp_path, videos):
    listed = csv_list(tmp_path / "list.csv", videos, count=2)
    done = subprocess.run(["a2d-video2dataset", f"--url_list={listed}", "--output_folder", str(tmp_path / "out"),
                           "--caption_col", "caption", "--output-format", "parquet",
                           "--config", "{'storage': {'number_sample_per_shard': 10}}", "-q"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    table = pq.read_table(tmp_path / "out" / "00000.parquet")
    assert table.column_names[:5] == ["caption", "url", "key", "status", "error_message"]
    assert sorted(table.column("key").to_pylist()) == ["000000", "000001"]  # 10 a shard: ceil(log10 10) + 5 digits
    refused = subprocess.run(["a2d-video2dataset", "--url_list", listed, "--stage", "caption"],
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        "a2d-video2dataset: error: stage='caption' is not supported: run the model over a dataset with the stages: "
        "a2d-read DATASET | a2d-subsample --model caption --model-option model=NAME_OR_PATH | a2d-write OUT (or give "
        "CaptionSubsampler in the config)"]


def test_the_example_runs(tmp_path):
    from pathlib import Path

    example = Path(__file__).resolve().parent.parent / "examples" / "video2dataset_example.py"
    done = subprocess.run(["python3", str(example), str(tmp_path / "out")], capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"4 clips from 2 videos in {tmp_path / 'out'}: 4 saved, 1 shard"
    with tarfile.open(tmp_path / "out" / "00000.tar") as tar:
        assert sorted(name for name in tar.getnames() if name.endswith(".mp4")) == [
            "0000000_00000.mp4", "0000000_00001.mp4", "0000000_00002.mp4", "0000001_00000.mp4"]


def test_a_reply_that_is_not_a_video_fails_instead_of_being_saved(tmp_path, videos):
    """video2dataset saves whatever an .mp4 URL returns; a page URL goes to yt-dlp (when it is
    installed: there it finds no video and fails as no_content), else is fetched and fails as
    not a video."""
    from any2dataset.fetch import ytdlp

    listed = tmp_path / "list.csv"
    listed.write_text(f"url\n{videos}/v0.mp4\n{videos}/\n")  # the second: the server's HTML index page
    report = any2dataset.video2dataset(url_list=str(listed), output_folder=str(tmp_path / "out"), quiet=True)
    assert report["statuses"]["success"] == 1
    rows = sorted(pq.read_table(tmp_path / "out" / "00000.parquet").to_pylist(), key=lambda row: row["key"])
    if ytdlp.available():
        assert [row["status"] for row in rows] == ["success", "failed_to_download"]
        assert rows[1]["error_message"].startswith("yt-dlp: Unsupported URL")
    else:
        assert [row["status"] for row in rows] == ["success", "failed_to_subsample"]
        assert rows[1]["error_message"].startswith("not audio or video: html (text/html")
    # as video2dataset, the failed sample's .json is written too
    assert sorted(p.name for p in (tmp_path / "out" / "00000").iterdir()) == ["00000000.json", "00000000.mp4",
                                                                                "00000001.json"]


def test_subsampler_settings_helpers():
    from any2dataset import video_all_in_one as v2d

    assert v2d._resolution_settings({"height": 64, "width": 64, "resize_mode": "scale"})["video_size"] == 64
    with pytest.raises(UsageProblem, match="needs video_size"):
        v2d._resolution_settings({"height": 64, "width": 32})
    assert v2d._audio_settings(None, {"video": "mp4"}) == {}
    assert v2d._audio_settings({"sample_rate": 16000, "n_audio_channels": 1}, {"video": "mp4", "audio": "m4a"}) == {
        "audio_rate": 16000, "audio_channels": 1, "audio_format": "m4a", "keep_video": True}
    assert v2d._clipping_settings({"max_length": 5, "max_length_strategy": "first"}) == {
        "use_clips": True, "min_clip_length": 0.0, "clip_length": 5.0, "clip_windows": "first"}
    with pytest.raises(UsageProblem, match="precision"):
        v2d._clipping_settings({"precision": "perfect"})


def test_a_run_that_saved_nothing_exits_1_though_failed_samples_are_kept(tmp_path, videos):
    listed = tmp_path / "list.csv"
    listed.write_text(f"url\n{videos}/missing.mp4\n")
    done = subprocess.run(["a2d-video2dataset", "--url_list", str(listed), "--output_folder", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("a2d-video2dataset: error: no sample saved: all 1 rows")
    assert (tmp_path / "out" / "00000" / "00000000.json").exists()  # the failure's .json, as video2dataset
