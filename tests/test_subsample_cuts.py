"""Cut detection (a2d-subsample --detect-cuts, --use-cuts) on a video that ffmpeg makes with
cuts at known frames, and video2dataset's CutDetectionSubsampler translated by the all-in-one."""

import json
import shutil
import subprocess

import orjson
import pytest

from any2dataset import record as rec
from any2dataset.commands import subsample as subsample_command
from any2dataset.errors import UsageProblem
from any2dataset.subsample import cuts
from any2dataset.subsample.video import VideoOptions, video_transform

if not (shutil.which("ffmpeg") and shutil.which("ffprobe")):
    pytest.skip("ffmpeg and ffprobe are not on PATH (apt-get install ffmpeg)", allow_module_level=True)

FFMPEG = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
FPS = 25
# (source, seconds) of each scene; the cut into the last one is soft: two greys 16 levels apart
SCENES = [("color=c=red:", 1.0), ("testsrc=", 1.6), ("color=c=blue:", 0.4), ("color=c=0x606060:", 1.0),
          ("color=c=0x707070:", 1.0)]
TRUTH = [[0, 25], [25, 65], [65, 75], [75, 100], [100, 125]]  # frames [start, end)
FRAMES = 125


@pytest.fixture(scope="module")
def scenes_mp4(tmp_path_factory) -> bytes:
    """5 s at 25 fps, 160x120, cuts at frames 25, 65, 75 (hard; scene scores 0.57 to 0.88) and
    100 (soft: 0.14); the testsrc scene moves (scores under 0.01)."""
    path = tmp_path_factory.mktemp("cuts") / "scenes.mp4"
    inputs = []
    for source, seconds in SCENES:
        inputs += ["-f", "lavfi", "-i", f"{source}s=160x120:r={FPS}:d={seconds}"]
    joined = "".join(f"[{i}]" for i in range(len(SCENES))) + f"concat=n={len(SCENES)}:v=1:a=0"
    subprocess.run(FFMPEG + inputs + ["-filter_complex", joined, "-c:v", "libx264", "-preset", "ultrafast",
                                      "-pix_fmt", "yuv420p", str(path)], check=True)
    return path.read_bytes()


def record(payload: bytes, **fields) -> dict:
    return {"key": "000000003", "url": "http://x/s.mp4", "status": "success", "mime": "video/mp4",
            "files": {"mp4": payload}, **fields}


def detect(payload: bytes, **options) -> list[dict]:
    return video_transform(VideoOptions(detect_cuts=True, **options))(record(payload))


def video_duration(payload: bytes, tmp_path) -> float:
    path = tmp_path / "clip.mp4"
    path.write_bytes(payload)
    done = subprocess.run(["ffprobe", "-loglevel", "error", "-print_format", "json", "-show_streams", str(path)],
                          capture_output=True, check=True)
    [stream] = [s for s in json.loads(done.stdout)["streams"] if s["codec_type"] == "video"]
    return float(stream["duration"])


def assert_within_a_frame(found: list[list[int]], truth: list[list[int]]) -> None:
    assert len(found) == len(truth), found
    for (start, end), (true_start, true_end) in zip(found, truth):
        assert abs(start - true_start) <= 1 and abs(end - true_end) <= 1, (found, truth)


def test_cuts_are_found_within_a_frame_as_video2dataset_lays_them_out(scenes_mp4):
    [out] = detect(scenes_mp4, cut_threshold=0.05, min_scene_length=0)
    assert out["status"] == "success" and out["files"]["mp4"] is scenes_mp4  # detection changes no payload
    assert set(out["cuts"]) == {"cuts_original_fps", "original_fps"}
    assert out["cuts"]["original_fps"] == 25.0
    assert_within_a_frame(out["cuts"]["cuts_original_fps"], TRUTH)
    assert out["cuts"]["cuts_original_fps"][-1][1] == FRAMES  # the scenes cover the whole video


def test_the_threshold_decides_which_cuts_count(scenes_mp4):
    def found(threshold):
        [out] = detect(scenes_mp4, cut_threshold=threshold, min_scene_length=0)
        return [start for start, _ in out["cuts"]["cuts_original_fps"][1:]]

    assert found(0.05) == [25, 65, 75, 100]
    assert found(0.3) == [25, 65, 75]  # the default misses the soft cut
    assert found(0.6) == [25, 65]
    assert found(0.95) == []
    [whole] = detect(scenes_mp4, cut_threshold=0.95)
    assert whole["cuts"]["cuts_original_fps"] == [[0, FRAMES]]


def test_min_scene_length_drops_cuts_too_close_to_the_previous_one_or_the_start(scenes_mp4):
    # 75 is 10 frames (0.4 s) after 65: dropped; 100 is then measured from 65 (35 frames): kept
    [out] = detect(scenes_mp4, cut_threshold=0.05, min_scene_length=0.5)
    assert out["cuts"]["cuts_original_fps"] == [[0, 25], [25, 65], [65, 100], [100, 125]]
    # in frames (video2dataset's min_scene_len): 25 is too close to the start
    [out] = detect(scenes_mp4, cut_threshold=0.05, min_scene_length=0, min_scene_frames=30)
    assert out["cuts"]["cuts_original_fps"] == [[0, 65], [65, 100], [100, 125]]
    # the longer of the two holds: 1.1 s is 28 frames
    [out] = detect(scenes_mp4, cut_threshold=0.05, min_scene_length=1.1, min_scene_frames=2)
    assert out["cuts"]["cuts_original_fps"] == [[0, 65], [65, 100], [100, 125]]


def test_longest_mode_and_other_frame_rates(scenes_mp4):
    [out] = detect(scenes_mp4, cut_threshold=0.05, min_scene_length=0, cut_mode="longest")
    assert out["cuts"]["cuts_original_fps"] == [[25, 65]]
    [out] = detect(scenes_mp4, cut_threshold=0.05, min_scene_length=0, cut_framerates=(5, 12.5))
    assert set(out["cuts"]) == {"cuts_original_fps", "original_fps", "cuts_5", "cuts_12.5"}
    for key in ("cuts_5", "cuts_12.5"):  # in frames of the original video, to one sampled frame
        found = out["cuts"][key]
        assert len(found) == len(TRUTH) and found[0][0] == 0 and found[-1][1] == FRAMES, found
        for (start, _), (true_start, _) in zip(found, TRUTH):
            assert abs(start - true_start) <= FPS / 5, (key, found)


def test_clips_by_cuts(scenes_mp4, tmp_path):
    options = VideoOptions(use_cuts=True, cut_threshold=0.05, min_scene_length=0)
    assert options.detect_cuts  # use_cuts implies detection
    clips = video_transform(options)(record(scenes_mp4, clips=[[0, 1]]))
    assert [c["key"] for c in clips] == [f"000000003_{i:05d}" for i in range(5)]
    for clip, (start, end) in zip(clips, TRUTH):
        assert clip["status"] == "success" and clip["source_key"] == "000000003" and clip["clip_count"] == 5
        assert abs(clip["clip_start"] - start / FPS) <= 1 / FPS and abs(clip["clip_end"] - end / FPS) <= 1 / FPS
        assert "clips" not in clip and clip["cuts"] == clips[0]["cuts"]  # the source's cuts, on every clip
        duration = video_duration(clip["files"]["mp4"], tmp_path)
        assert abs(duration - (end - start) / FPS) <= 1.5 / FPS, (clip["key"], duration)
    # the scenes go through the clip options: windows of 1 s, then clips not over 0.5 s dropped
    options = VideoOptions(use_cuts=True, cut_threshold=0.05, min_scene_length=0, clip_length=1.0,
                           min_clip_length=0.5)
    windows = video_transform(options)(record(scenes_mp4))
    assert [(c["clip_start"], c["clip_end"]) for c in windows] == [(0.0, 1.0), (1.0, 2.0), (2.0, 2.6), (3.0, 4.0),
                                                                   (4.0, 5.0)]
    for clip in windows:
        duration = video_duration(clip["files"]["mp4"], tmp_path)
        assert abs(duration - (clip["clip_end"] - clip["clip_start"])) <= 1.5 / FPS


def test_broken_payloads_become_failure_records(scenes_mp4):
    transform = video_transform(VideoOptions(use_cuts=True))
    [garbage] = transform(record(b"\x00garbage" * 500))
    assert (garbage["status"], garbage["error_kind"]) == ("failed_to_subsample", "decode_error")
    assert "files" not in garbage and garbage["key"] == "000000003" and "cuts" not in garbage
    [truncated] = transform(record(scenes_mp4[: len(scenes_mp4) // 2]))
    assert (truncated["status"], truncated["error_kind"]) == ("failed_to_subsample", "decode_error")
    [late] = video_transform(VideoOptions(detect_cuts=True, timeout=0.001))(record(scenes_mp4))
    assert (late["status"], late["error_kind"]) == ("failed_to_subsample", "timeout")
    # a page instead of a video: passed through, or failed with --non-media fail; never a crash
    page = {"key": "1", "status": "success", "mime": "text/html", "files": {"html": b"<html></html>"}}
    assert transform(dict(page)) == [page]
    [refused] = video_transform(VideoOptions(detect_cuts=True, non_media="fail"))(dict(page))
    assert (refused["status"], refused["error_kind"]) == ("failed_to_subsample", "decode_error")


def test_audio_alone_gets_no_cuts_and_is_not_cut(tmp_path):
    path = tmp_path / "tone.wav"
    subprocess.run(FFMPEG + ["-f", "lavfi", "-i", "sine=duration=1", str(path)], check=True)
    tone = {"key": "1", "status": "success", "files": {"wav": path.read_bytes()}}
    [out] = video_transform(VideoOptions(use_cuts=True))(dict(tone))
    assert out["status"] == "success" and "cuts" not in out and "source_key" not in out


def test_cut_options_are_checked():
    for bad in (dict(cut_threshold=0), dict(cut_threshold=1.5), dict(cut_mode="middle"), dict(min_scene_length=-1),
                dict(min_scene_frames=-1), dict(cut_framerates=(0,)), dict(use_cuts=True, use_clips=True)):
        with pytest.raises(UsageProblem):
            VideoOptions(**bad)
    assert VideoOptions(detect_cuts=True).enabled and not VideoOptions().detect_cuts


# --- the pieces of cuts.py --------------------------------------------------------------

def test_scores_are_read_from_ffmpegs_metadata_print():
    output = (b"frame:0    pts:0       pts_time:0\nlavfi.scene_score=0.000000\n"
              b"frame:1    pts:512     pts_time:0.04\nlavfi.scene_score=0.695822\n"
              b"frame:2    pts:1024    pts_time:0.08\n")  # a frame without its score line scores 0
    assert cuts.parse_scores(output) == [(0.0, 0.0), (0.04, 0.695822), (0.08, 0.0)]
    assert cuts.parse_scores(b"") == []


def test_cut_frames_and_scenes():
    scores = [0, 0.9, 0, 0.9, 0.9, 0, 0, 0.2]
    assert cuts.cut_frames(scores, 0.5, 0) == [1, 3, 4]
    assert cuts.cut_frames(scores, 0.5, 2) == [3]  # 1 is too close to the start, 4 to 3
    assert cuts.cut_frames(scores, 0.1, 3) == [3, 7]
    assert cuts.cut_frames([0.9, 0.9], 0.5, 3, frames=[0, 5]) == [5]  # frames of the original video
    assert cuts.scenes([3, 7], 10) == [[0, 3], [3, 7], [7, 10]]
    assert cuts.scenes([], 10) == [[0, 10]]
    assert cuts.scenes([3, 7], 10, "longest") == [[3, 7]]
    assert cuts.scenes([2, 4], 6, "longest") == [[0, 2]]  # the first of equals, as numpy's argmax
    assert cuts.min_frames(25.0, 0.5, 0) == 13 and cuts.min_frames(25.0, 0.4, 15) == 15
    assert cuts.min_frames(30.0, 0.5, 0) == 15
    assert cuts.original_frames([1.0, 1.2, 1.4], 25.0) == [0, 5, 10]
    assert cuts.framerate_key(5.0) == "cuts_5" and cuts.framerate_key(2.5) == "cuts_2.5"
    assert cuts.clip_spans({"cuts_original_fps": [[0, 25], [25, 60]], "original_fps": 25.0}) == [(0.0, 1.0),
                                                                                                (1.0, 2.4)]


# --- the command -------------------------------------------------------------------------

def test_the_command_detects_and_clips_at_cuts(scenes_mp4, cli):
    line = rec.dumps(record(scenes_mp4))
    detected = cli(subsample_command.main, ["-w", "1", "--detect-cuts", "--cut-threshold", "0.05",
                                            "--min-scene-length", "0"], input=line)
    assert detected.exit_code == 0, detected.stderr
    [out] = [orjson.loads(text) for text in detected.stdout.splitlines()]
    assert_within_a_frame(out["cuts"]["cuts_original_fps"], TRUTH)
    clipped = cli(subsample_command.main, ["-w", "1", "--use-cuts", "--min-scene-length", "0.5", "--cut-mode", "all",
                                           "--cut-framerate", "5"], input=line)
    assert clipped.exit_code == 0, clipped.stderr
    clips = [orjson.loads(text) for text in clipped.stdout.splitlines()]
    assert [c["key"] for c in clips] == ["000000003_00000", "000000003_00001", "000000003_00002"]
    assert [c["clip_count"] for c in clips] == [3, 3, 3] and "cuts_5" in clips[0]["cuts"]
    assert "records read, 3 written: success 3" in clipped.stderr
    both = cli(subsample_command.main, ["--use-cuts", "--use-clips"], input=line)
    assert both.exit_code == 2 and "not both" in both.stderr


def test_the_command_in_worker_processes(scenes_mp4, pipeline, tmp_path):
    (tmp_path / "in.jsonl").write_bytes(rec.dumps(record(scenes_mp4)) + rec.dumps(record(b"broken", key="000000004")))
    done = pipeline("a2d-subsample -w 2 --use-cuts --cut-threshold 0.6 < in.jsonl > out.jsonl")
    assert done.returncode == 0, done.stderr
    out = [orjson.loads(line) for line in (tmp_path / "out.jsonl").read_bytes().splitlines()]
    assert [(r["key"], r["status"]) for r in out] == [("000000003_00000", "success"), ("000000003_00001", "success"),
                                                      ("000000003_00002", "success"),
                                                      ("000000004", "failed_to_subsample")]
    assert out[-1]["error_kind"] == "decode_error"
    assert [c["cuts"]["cuts_original_fps"] for c in out[:3]] == [[[0, 25], [25, 65], [65, 125]]] * 3


# --- video2dataset's CutDetectionSubsampler, through the all-in-one -----------------------

def plan_video(**config):
    from any2dataset.video_all_in_one import video2dataset_plan

    return video2dataset_plan(url_list="v.csv", **config)


def test_video2dataset_cut_detection_is_translated():
    plan = plan_video(config={"subsampling": {"CutDetectionSubsampler": {"args": {
        "cut_detection_mode": "longest", "framerates": [5, 2.5], "threshold": 11.5, "min_scene_len": 10}}}})
    video = plan.subsample.video
    assert (video.detect_cuts, video.use_cuts, video.cut_mode, video.cut_framerates) == (True, False, "longest",
                                                                                         (5.0, 2.5))
    assert (video.cut_threshold, video.min_scene_frames, video.min_scene_length) == (0.115, 10, 0.0)
    assert not video.use_clips and video.clip_length is None
    assert plan.write.columns == ["cuts", "url", "key", "status", "error_message"]  # cuts in .json and parquet
    # video2dataset's defaults: threshold 27, min_scene_len 15 frames
    default = plan_video(config={"subsampling": {"CutDetectionSubsampler": {"args": {}}}}).subsample.video
    assert (default.cut_threshold, default.min_scene_frames, default.cut_mode) == (0.27, 15, "all")


def test_video2dataset_cuts_are_clips_go_through_the_clipping_subsampler():
    clipping = {"args": {"min_length": 2.0, "max_length": 4.0, "max_length_strategy": "first"}}
    config = {"subsampling": {"CutDetectionSubsampler": {"cuts_are_clips": True, "args": {"threshold": 30}},
                              "ClippingSubsampler": clipping}}
    # the scenes replace the clip column's spans, as video2dataset's worker does
    video = plan_video(config=config, clip_col="spans").subsample.video
    assert (video.use_cuts, video.use_clips, video.clip_length, video.min_clip_length, video.clip_windows) == (
        True, False, 4.0, 2.0, "first")
    named = plan_video(config="downsample_ml").subsample.video
    assert (named.use_cuts, named.cut_threshold, named.min_scene_frames, named.clip_length,
            named.min_clip_length, named.video_size, named.video_fps) == (True, 0.115, 15, 10.0, 4.0, 224, 5.0)


def test_video2dataset_cut_detection_round_trips_through_the_pipe_form(tmp_path):
    from any2dataset.plan import pipe_form, settled
    from test_plan import built_by_the_commands

    config = {"subsampling": {"CutDetectionSubsampler": {"cuts_are_clips": True, "args": {
        "framerates": [5], "threshold": 11.5, "min_scene_len": 12, "cut_detection_mode": "longest"}}}}
    plan = settled(plan_video(config=config, output_folder=str(tmp_path / "out")))
    assert built_by_the_commands(pipe_form(plan))["subsample"] == plan.subsample


@pytest.mark.parametrize("args, reason", [
    ({"cut_detection_mode": "middle"}, "cut_detection_mode must be all or longest"),
    ({"threshold": 150}, "threshold 150 is over 100"),
    ({"threshold": "high"}, "threshold must be a number"),
    ({"framerates": 5}, "framerates must be null or a list"),
    ({"framerates": [0]}, "framerates must be a number of at least"),
    ({"min_scene_len": -1}, "min_scene_len must be an integer of at least 0"),
    ({"detector": "adaptive"}, "unknown detector"),
])
def test_video2dataset_cut_settings_that_cannot_be_honoured_are_refused(args, reason):
    with pytest.raises(UsageProblem, match=reason):
        plan_video(config={"subsampling": {"CutDetectionSubsampler": {"args": args}}})


def test_video2dataset_cut_detection_takes_args_and_cuts_are_clips_only():
    with pytest.raises(UsageProblem, match="unknown every_frame"):
        plan_video(config={"subsampling": {"CutDetectionSubsampler": {"every_frame": True, "args": {}}}})
