"""a2d-subsample's audio/video transforms, on tiny media that ffmpeg makes itself."""

import json
import pickle
import shutil
import subprocess

import orjson
import pytest

from any2dataset.errors import MissingTool, UsageProblem
from any2dataset.subsample import video
from any2dataset.subsample.video import VideoOptions, video_transform

if not (shutil.which("ffmpeg") and shutil.which("ffprobe")):
    pytest.skip("ffmpeg and ffprobe are not on PATH (apt-get install ffmpeg)", allow_module_level=True)

FFMPEG = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]


@pytest.fixture(scope="session")
def media(tmp_path_factory):
    """av.mp4: 4 s, 320x240 at 25 fps with a 440 Hz tone; tone.wav: 2 s mono at 44.1 kHz;
    rotated.mp4: 1 s, 320x240 stored with a 90 degree rotation and no audio."""
    folder = tmp_path_factory.mktemp("media")
    h264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "50"]
    subprocess.run(FFMPEG + ["-f", "lavfi", "-i", "testsrc=duration=4:size=320x240:rate=25", "-f", "lavfi",
                             "-i", "sine=frequency=440:duration=4", "-shortest", *h264, "-c:a", "aac",
                             str(folder / "av.mp4")], check=True)
    subprocess.run(FFMPEG + ["-f", "lavfi", "-i", "sine=frequency=440:duration=2:sample_rate=44100",
                             str(folder / "tone.wav")], check=True)
    subprocess.run(FFMPEG + ["-f", "lavfi", "-i", "testsrc=duration=1:size=320x240:rate=25", *h264,
                             str(folder / "upright.mp4")], check=True)
    # ffmpeg 5 writes the rotation (a display matrix) only when copying the stream
    subprocess.run(FFMPEG + ["-i", str(folder / "upright.mp4"), "-c", "copy", "-metadata:s:v:0", "rotate=90",
                             str(folder / "rotated.mp4")], check=True)
    return {name: (folder / name).read_bytes() for name in ("av.mp4", "tone.wav", "rotated.mp4")}


def probe(payload: bytes, tmp_path, extension: str) -> dict:
    """ffprobe's own view of a payload, independent of the module under test."""
    path = tmp_path / f"probe.{extension}"
    path.write_bytes(payload)
    done = subprocess.run(["ffprobe", "-loglevel", "error", "-print_format", "json", "-show_format",
                           "-show_streams", str(path)], capture_output=True, check=True)
    return json.loads(done.stdout)


def stream(info: dict, kind: str) -> dict:
    return next(s for s in info["streams"] if s["codec_type"] == kind)


def run(options: VideoOptions, record: dict) -> list[dict]:
    return video_transform(options)(record)


def video_record(media, **fields) -> dict:
    return {"key": "000000007", "url": "http://x/v.mp4", "caption": "a test pattern", "status": "success",
            "mime": "video/mp4", "files": {"mp4": media["av.mp4"], "txt": b"kept"}, **fields}


def jpeg_size(payload: bytes, tmp_path) -> tuple[int, int]:
    assert payload[:3] == b"\xff\xd8\xff"
    try:
        import io

        from PIL import Image

        with Image.open(io.BytesIO(payload)) as image:
            assert image.format == "JPEG"
            return image.size
    except ImportError:
        info = stream(probe(payload, tmp_path, "jpg"), "video")
        return info["width"], info["height"]


@pytest.mark.parametrize("mode, expected", [("scale", (134, 100)), ("crop", (100, 100)), ("pad", (100, 100))])
def test_resize_modes(media, tmp_path, mode, expected):
    [out] = run(VideoOptions(video_size=100, video_resize_mode=mode), video_record(media))
    assert out["status"] == "success" and set(out["files"]) == {"mp4", "txt"}
    info = probe(out["files"]["mp4"], tmp_path, "mp4")
    picture = stream(info, "video")
    assert (picture["width"], picture["height"]) == expected
    assert picture["codec_name"] == "h264" and stream(info, "audio")["codec_name"] == "aac"
    assert (out["width"], out["height"]) == expected
    assert (out["original_width"], out["original_height"]) == (320, 240)
    assert out["mime"] == "video/mp4" and out["size"] == len(out["files"]["mp4"])
    assert out["files"]["txt"] == b"kept" and out["caption"] == "a test pattern"


def test_pad_adds_black_bands(media, tmp_path):
    pytest.importorskip("PIL")
    import io

    from PIL import Image

    [out] = run(VideoOptions(video_size=100, video_resize_mode="pad", thumbnails=1), video_record(media))
    with Image.open(io.BytesIO(out["files"]["jpg"])) as image:
        rgb = image.convert("RGB")
        assert image.size == (100, 100)
        assert max(rgb.getpixel((50, 3))) < 30  # 320x240 -> 100x76, 12 rows of black above
        assert max(rgb.getpixel((50, 50))) > 60


def test_rotated_video_is_upright(media, tmp_path):
    record = {"key": "1", "status": "success", "files": {"mp4": media["rotated.mp4"]}}
    [out] = run(VideoOptions(video_size=100), record)
    picture = stream(probe(out["files"]["mp4"], tmp_path, "mp4"), "video")
    assert (picture["width"], picture["height"]) == (100, 134)
    assert (out["original_width"], out["original_height"]) == (240, 320)


def test_fps(media, tmp_path):
    [out] = run(VideoOptions(video_fps=10), video_record(media))
    picture = stream(probe(out["files"]["mp4"], tmp_path, "mp4"), "video")
    assert picture["r_frame_rate"] == "10/1"
    assert abs(int(picture["nb_frames"]) - 40) <= 1
    assert (picture["width"], picture["height"]) == (320, 240)


def test_audio_transcode_to_flac(media, tmp_path):
    record = {"key": "3", "status": "success", "mime": "audio/wav", "size": len(media["tone.wav"]),
              "files": {"wav": media["tone.wav"]}}
    [out] = run(VideoOptions(audio_format="flac", audio_rate=16000, audio_channels=1), record)
    assert list(out["files"]) == ["flac"]
    assert out["mime"] == "audio/flac" and out["size"] == len(out["files"]["flac"])
    assert out["files"]["flac"][:4] == b"fLaC"
    sound = stream(probe(out["files"]["flac"], tmp_path, "flac"), "audio")
    assert (sound["codec_name"], sound["sample_rate"], sound["channels"]) == ("flac", "16000", 1)
    assert abs(float(sound["duration"]) - 2.0) < 0.01


def test_audio_track_of_a_video(media, tmp_path):
    [out] = run(VideoOptions(audio_format="m4a", audio_rate=22050), video_record(media))
    assert set(out["files"]) == {"m4a", "txt"} and out["mime"] == "audio/mp4"
    info = probe(out["files"]["m4a"], tmp_path, "m4a")
    assert [s["codec_type"] for s in info["streams"]] == ["audio"]
    assert stream(info, "audio")["sample_rate"] == "22050"
    # with a video option too, the record carries both
    [both] = run(VideoOptions(audio_format="mp3", video_size=64), video_record(media))
    assert set(both["files"]) == {"mp4", "mp3", "txt"} and both["mime"] == "video/mp4"
    assert stream(probe(both["files"]["mp3"], tmp_path, "mp3"), "audio")["codec_name"] == "mp3"
    assert both["size"] == len(both["files"]["mp4"])


def test_audio_format_without_audio_is_rejected(media):
    record = {"key": "1", "status": "success", "files": {"mp4": media["rotated.mp4"]}}
    [out] = run(VideoOptions(audio_format="flac"), record)
    assert (out["status"], out["error_kind"]) == ("failed_to_subsample", "rejected")
    assert "no audio stream" in out["error_message"] and "files" not in out


def test_probe(media):
    record = video_record(media)
    [out] = run(VideoOptions(probe=True), record)
    assert out["files"]["mp4"] is media["av.mp4"]  # untouched
    assert abs(out["duration"] - 4.0) < 0.05
    assert (out["width"], out["height"]) == (320, 240)
    meta = orjson.loads(orjson.dumps(out["video_metadata"]))
    assert meta == out["video_metadata"]
    assert "mp4" in meta["format"] and meta["bit_rate"] > 0
    kinds = {s["codec_type"]: s for s in meta["streams"]}
    assert set(kinds) == {"video", "audio"}
    assert (kinds["video"]["codec_name"], kinds["video"]["fps"], kinds["video"]["nb_frames"]) == ("h264", 25.0, 100)
    assert (kinds["audio"]["codec_name"], kinds["audio"]["sample_rate"]) == ("aac", 44100)
    assert kinds["video"].keys() == kinds["audio"].keys()  # one shape for every stream


def test_probe_describes_the_output(media):
    [out] = run(VideoOptions(probe=True, video_size=64, video_resize_mode="crop"), video_record(media))
    assert (out["width"], out["height"]) == (64, 64)
    [picture] = [s for s in out["video_metadata"]["streams"] if s["codec_type"] == "video"]
    assert (picture["width"], picture["height"]) == (64, 64)


def test_thumbnails(media, tmp_path):
    [out] = run(VideoOptions(thumbnails=3, video_size=100, video_resize_mode="crop"), video_record(media))
    names = ["jpg", "1.jpg", "2.jpg"]
    assert set(out["files"]) == {"mp4", "txt", *names}
    for name in names:
        assert jpeg_size(out["files"][name], tmp_path) == (100, 100)
    assert len({out["files"][name] for name in names}) == 3  # different frames (testsrc moves)
    [single] = run(VideoOptions(thumbnails=1), video_record(media))
    assert set(single["files"]) == {"mp4", "txt", "jpg"}
    assert single["files"]["mp4"] is media["av.mp4"]
    assert jpeg_size(single["files"]["jpg"], tmp_path) == (320, 240)
    # audio has no picture: nothing to add
    tone = {"key": "1", "status": "success", "files": {"wav": media["tone.wav"]}}
    assert set(run(VideoOptions(thumbnails=2), tone)[0]["files"]) == {"wav"}


def test_fixed_windows(media, tmp_path):
    record = video_record(media, clips=[[0, 1]])
    clips = run(VideoOptions(clip_length=1.5), record)
    assert [c["key"] for c in clips] == ["000000007_00000", "000000007_00001", "000000007_00002"]
    assert [(c["clip_start"], c["clip_end"]) for c in clips] == [(0.0, 1.5), (1.5, 3.0), (3.0, 4.0)]
    for clip in clips:
        assert clip["source_key"] == "000000007" and clip["clip_count"] == 3
        assert "clips" not in clip and clip["caption"] == "a test pattern" and clip["files"]["txt"] == b"kept"
        assert set(clip["files"]) == {"mp4", "txt"} and clip["size"] == len(clip["files"]["mp4"])
        picture = stream(probe(clip["files"]["mp4"], tmp_path, "mp4"), "video")
        expected = clip["clip_end"] - clip["clip_start"]
        assert abs(float(picture["duration"]) - expected) < 0.1, (clip["key"], picture["duration"])
    longer = run(VideoOptions(clip_length=1.5, min_clip_length=1.2), video_record(media))
    assert [c["key"] for c in longer] == ["000000007_00000", "000000007_00001"]
    assert all(c["clip_count"] == 2 for c in longer)


def test_clips_field(media, tmp_path):
    record = video_record(media, clips=[[0.5, 1.5], ["00:00:02.000", "00:00:03.250"], [3.5, 10], [5, 6]])
    clips = run(VideoOptions(use_clips=True, probe=True), record)
    assert [(c["clip_start"], c["clip_end"]) for c in clips] == [(0.5, 1.5), (2.0, 3.25), (3.5, 4.0)]
    for clip in clips:
        picture = stream(probe(clip["files"]["mp4"], tmp_path, "mp4"), "video")
        assert abs(float(picture["duration"]) - (clip["clip_end"] - clip["clip_start"])) < 0.1
        assert abs(clip["duration"] - (clip["clip_end"] - clip["clip_start"])) < 0.1
    short = run(VideoOptions(use_clips=True, min_clip_length=0.6), video_record(media, clips=[[0, 1], [3.5, 9]]))
    assert [c["clip_end"] for c in short] == [1.0]
    # a record without clips is not cut
    [whole] = run(VideoOptions(use_clips=True), video_record(media))
    assert whole["key"] == "000000007" and "source_key" not in whole


def test_audio_clips_are_exact(media, tmp_path):
    record = {"key": "5", "status": "success", "files": {"wav": media["tone.wav"]}}
    clips = run(VideoOptions(clip_length=0.5), record)
    assert len(clips) == 4
    for clip in clips:
        sound = stream(probe(clip["files"]["wav"], tmp_path, "wav"), "audio")
        assert abs(float(sound["duration"]) - 0.5) < 0.005
        assert clip["mime"] == "audio/wav"


def test_no_clip_long_enough(media):
    [out] = run(VideoOptions(use_clips=True, min_clip_length=2), video_record(media, clips=[[0, 1], [3, 9]]))
    assert (out["status"], out["error_kind"], out["key"]) == ("failed_to_subsample", "rejected", "000000007")


def test_clipping_needs_keys(media):
    record = video_record(media)
    del record["key"]
    [out] = run(VideoOptions(clip_length=2), record)
    assert (out["status"], out["error_kind"]) == ("failed_to_subsample", "other")
    assert "a2d-shard" in out["error_message"]


def test_bad_clips_field(media):
    [out] = run(VideoOptions(use_clips=True), video_record(media, clips=[["soon", "later"]]))
    assert (out["error_kind"], out["status"]) == ("other", "failed_to_subsample")
    assert "invalid clips" in out["error_message"]


def test_garbage_is_a_decode_error():
    record = {"key": "1", "status": "success", "mime": "video/mp4", "files": {"mp4": b"\x00garbage" * 500}}
    [out] = run(VideoOptions(video_size=64), record)
    assert (out["status"], out["error_kind"]) == ("failed_to_subsample", "decode_error")
    message = out["error_message"]
    assert "\n" not in message and 0 < len(message) <= 200
    assert "invalid data" in message.lower() and "/tmp" not in message
    assert "files" not in out


def test_timeout(media):
    [out] = run(VideoOptions(video_size=64, timeout=0.001), video_record(media))
    assert (out["status"], out["error_kind"]) == ("failed_to_subsample", "timeout")
    assert "0.001" in out["error_message"]


def test_pass_through(media):
    transform = video_transform(VideoOptions(video_size=64, probe=True))
    failed = {"key": "1", "status": "failed_to_download", "error_kind": "not_found", "error_message": "404"}
    assert transform(dict(failed)) == [failed]
    filtered = {"key": "2", "status": "filtered", "files": {"mp4": media["av.mp4"]}}
    assert transform(filtered) == [filtered] and filtered["files"]["mp4"] is media["av.mp4"]
    image = {"key": "3", "status": "success", "mime": "image/jpeg", "files": {"jpg": b"\xff\xd8\xff", "txt": b"x"}}
    assert transform(dict(image)) == [image]
    nothing = {"key": "4", "url": "http://x/"}
    assert transform(dict(nothing)) == [nothing]
    tone = {"key": "5", "status": "success", "files": {"wav": media["tone.wav"]}}
    [out] = video_transform(VideoOptions(video_size=64, video_fps=5))(dict(tone, files=dict(tone["files"])))
    assert out == tone and out["files"]["wav"] is media["tone.wav"]  # nothing to draw on


def test_encoder_error_is_other_with_ffmpegs_reason(media):
    record = {"key": "1", "status": "success", "files": {"wav": media["tone.wav"]}}
    [out] = run(VideoOptions(audio_format="opus", audio_rate=44100), record)
    assert (out["status"], out["error_kind"]) == ("failed_to_subsample", "other")
    assert out["error_message"] == "ffmpeg: libopus: Specified sample rate 44100 is not supported"


def test_payload_found_by_mime(media, tmp_path):
    record = {"key": "1", "status": "success", "mime": "audio/x-wav", "files": {"bin": media["tone.wav"]}}
    [out] = run(VideoOptions(audio_rate=8000), record)
    assert list(out["files"]) == ["flac"] and out["mime"] == "audio/flac"
    assert stream(probe(out["files"]["flac"], tmp_path, "flac"), "audio")["sample_rate"] == "8000"


def test_missing_ffmpeg(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(MissingTool) as raised:
        video_transform(VideoOptions(video_size=64))
    assert "ffmpeg" in str(raised.value) and "apt-get install ffmpeg" in str(raised.value)
    assert raised.value.exit_code == 1
    # no audio/video option: nothing to run, nothing needed
    record = {"key": "1", "status": "success", "files": {"mp4": b"x"}}
    assert video_transform(VideoOptions())(record) == [record]


def test_options_are_checked():
    for bad in (dict(video_resize_mode="stretch"), dict(audio_format="midi"), dict(video_size=0), dict(thumbnails=-1)):
        with pytest.raises(UsageProblem):
            VideoOptions(**bad)
    assert not VideoOptions().enabled and VideoOptions(probe=True).enabled


def test_transform_pickles(media):
    transform = pickle.loads(pickle.dumps(video_transform(VideoOptions(video_size=64))))
    assert isinstance(transform, video.VideoTransform)
    assert transform(video_record(media))[0]["width"] == 86


def test_clips_through_subsample_and_write_make_a_complete_shard(media, pipeline, tmp_path):
    import orjson
    import pyarrow.parquet as pq

    from any2dataset import record as rec

    rows = [{"url": f"http://x/{i}.wav", "status": "success", "files": {"wav": media["tone.wav"]}}
            for i in range(3)]
    rows[1] = {"url": "http://x/1.wav", "status": "failed_to_download", "error_kind": "dns", "error_message": "x"}
    (tmp_path / "in.jsonl").write_bytes(b"".join(rec.dumps(r) for r in rows))
    result = pipeline("a2d-shard --number-sample-per-shard 3 in.jsonl | a2d-subsample -w 2 --clip-length 1 "
                      "--audio-format flac | a2d-write --format webdataset out/")
    assert result.returncode == 0, result.stderr
    table = pq.read_table(tmp_path / "out" / "00000.parquet").to_pylist()
    clips = [r for r in table if r["source_key"]]
    assert len(clips) == 4 and {r["source_key"] for r in clips} == {"000000", "000002"}
    assert sorted(r["key"] for r in clips) == ["000000_00000", "000000_00001", "000002_00000",
                                               "000002_00001"]
    assert {r["shard_size"] for r in table} == {3} and len(table) == 5  # 2 sources x 2 clips + 1 failure
    stats = orjson.loads((tmp_path / "out" / "00000_stats.json").read_bytes())
    assert stats["successes"] == 4 and stats["failed_to_download"] == 1


def test_keep_video_keeps_the_video_as_it_came_beside_its_audio_track(media, tmp_path):
    out, = run(VideoOptions(audio_format="m4a", keep_video=True), video_record(media, size=len(media["av.mp4"])))
    assert out["status"] == "success"
    assert out["files"]["mp4"] == media["av.mp4"]  # not re-encoded
    assert stream(probe(out["files"]["m4a"], tmp_path, "m4a"), "audio")["codec_name"] == "aac"
    assert not any(s["codec_type"] == "video" for s in probe(out["files"]["m4a"], tmp_path, "m4a")["streams"])
    assert out["mime"] == "video/mp4" and out["size"] == len(media["av.mp4"])  # they describe the video still
    # without keep_video the audio track replaces the video
    alone, = run(VideoOptions(audio_format="m4a"), video_record(media))
    assert "mp4" not in alone["files"] and "m4a" in alone["files"]


def test_keep_video_with_clips_cuts_both(media, tmp_path):
    clips = run(VideoOptions(audio_format="m4a", keep_video=True, use_clips=True),
                video_record(media, clips=[[0.0, 1.0], [2.0, 3.5]]))
    assert [clip["key"] for clip in clips] == ["000000007_00000", "000000007_00001"]
    for clip, length in zip(clips, (1.0, 1.5)):
        for extension in ("mp4", "m4a"):
            duration = float(probe(clip["files"][extension], tmp_path, extension)["format"]["duration"])
            assert abs(duration - length) < 0.1, (extension, duration)


def test_clip_windows_first_keeps_one_window_per_span(media):
    spans = [[0.0, 2.5], [3.0, 4.0]]
    every = run(VideoOptions(use_clips=True, clip_length=1.0), video_record(media, clips=spans))
    first = run(VideoOptions(use_clips=True, clip_length=1.0, clip_windows="first"), video_record(media, clips=spans))
    assert [(c["clip_start"], c["clip_end"]) for c in every] == [(0.0, 1.0), (1.0, 2.0), (2.0, 2.5), (3.0, 4.0)]
    assert [(c["clip_start"], c["clip_end"]) for c in first] == [(0.0, 1.0), (3.0, 4.0)]
    with pytest.raises(UsageProblem):
        VideoOptions(clip_length=1.0, clip_windows="last")


def test_non_media_fail_fails_a_payload_that_is_neither_audio_nor_video(media):
    page = {"key": "000000001", "url": "http://x/watch?v=1", "status": "success", "mime": "text/html",
            "files": {"html": b"<html>a video page</html>"}}
    failed, = run(VideoOptions(non_media="fail"), dict(page))
    assert (failed["status"], failed["error_kind"]) == ("failed_to_subsample", "decode_error")
    assert failed["error_message"].startswith("not audio or video: html (text/html)")
    kept, = run(VideoOptions(non_media="keep", video_size=64), dict(page))
    assert kept["status"] == "success" and kept["files"] == page["files"]
    video, = run(VideoOptions(non_media="fail"), video_record(media))  # media pass, unchanged
    assert video["status"] == "success" and video["files"]["mp4"] == media["av.mp4"]


def test_windows_cut_each_span_and_drop_float_tails():
    assert video._windows([(0.0, 10.0)], 4.0, first_only=False) == [(0.0, 4.0), (4.0, 8.0), (8.0, 10.0)]
    assert video._windows([(0.0, 10.0), (20.0, 21.0)], 4.0, first_only=True) == [(0.0, 4.0), (20.0, 21.0)]
    # a leftover under MIN_CLIP starts no window
    assert video._windows([(0.0, 8.005)], 4.0, first_only=False) == [(0.0, 4.0), (4.0, 8.0)]


def test_kept_spans_clamp_to_the_media_and_drop_short_ones():
    spans = [(-1.0, 2.0), (3.0, 3.005), (4.0, 9.0), (5.0, 5.5)]
    assert video._kept_spans(spans, 6.0, 0.0) == [(0.0, 2.0), (4.0, 6.0), (5.0, 5.5)]
    assert video._kept_spans(spans, None, 1.0) == [(0.0, 2.0), (4.0, 9.0)]


def test_a_clip_exactly_min_clip_length_long_is_dropped_as_in_video2dataset():
    assert video._kept_spans([(0.0, 1.0), (2.0, 3.5)], None, 1.0) == [(2.0, 3.5)]
