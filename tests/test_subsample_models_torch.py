"""The shipped models end to end through a2d-subsample, in the torch venv (tests/torch_env.py:
torch CPU, openai-whisper, transformers, OpenCV): optical flow on moving and still videos,
and whisper and captioning with tiny random models the tests make themselves
(tests/tiny_models.py). Outputs are checked for their fields, shapes and failures, not for
what random weights say."""

import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from any2dataset import record as rec
from servers import serve_folder

ROOT = Path(__file__).resolve().parents[1]
FFMPEG = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
H264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]

# The venv may still be building (conftest.py starts it in the background): longer than the
# suite's per-test limit.
pytestmark = pytest.mark.timeout(1800)


@pytest.fixture(scope="module")
def python() -> Path:
    from torch_env import find_or_build_venv

    return find_or_build_venv() / "bin" / "python"


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, bytes]:
    """moving.mp4: a test pattern in motion, with a tone; still.mp4: one grey picture, with a
    tone; mute.mp4: motion without sound; tone.wav; picture.png."""
    folder = tmp_path_factory.mktemp("media")
    tone = ["-f", "lavfi", "-i", "sine=frequency=440:duration=2"]
    subprocess.run(FFMPEG + ["-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10:duration=2", *tone, "-shortest",
                             *H264, "-c:a", "aac", str(folder / "moving.mp4")], check=True)
    subprocess.run(FFMPEG + ["-f", "lavfi", "-i", "color=c=gray:size=160x120:rate=10:duration=2", *tone, "-shortest",
                             *H264, "-c:a", "aac", str(folder / "still.mp4")], check=True)
    subprocess.run(FFMPEG + ["-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10:duration=1", *H264,
                             str(folder / "mute.mp4")], check=True)
    subprocess.run(FFMPEG + tone + [str(folder / "tone.wav")], check=True)
    subprocess.run(FFMPEG + ["-f", "lavfi", "-i", "testsrc2=size=64x48", "-frames:v", "1",
                             str(folder / "picture.png")], check=True)
    return {path.name: path.read_bytes() for path in folder.iterdir()}


@pytest.fixture(scope="module")
def tiny(python, tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("tiny")
    done = subprocess.run([str(python), str(ROOT / "tests" / "tiny_models.py"), str(folder)], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


def record(key: str, name: str, media: dict, **fields) -> dict:
    extension = name.rpartition(".")[2]
    return {"key": key, "status": "success", "files": {extension: media[name]}, **fields}


def subsample(python: Path, records: list[dict], *arguments: str) -> tuple[list[dict], str, int]:
    done = subprocess.run([str(python), "-m", "any2dataset.subsample", *arguments],
                          input=b"".join(rec.dumps(r) for r in records), capture_output=True, timeout=600,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    # a failed run ends its output with an abort line (record.ABORT), which is no record
    out = [rec.decode_payloads(json.loads(line)) for line in done.stdout.splitlines()
           if line.strip() and rec.ABORT not in json.loads(line)]
    return out, done.stderr.decode(), done.returncode


def test_optical_flow_of_a_moving_video_is_larger_than_of_a_still_one(python, media):
    records = [record("moving", "moving.mp4", media), record("still", "still.mp4", media),
               record("broken", "moving.mp4", {"moving.mp4": b"not a video"}), record("tone", "tone.wav", media),
               {"key": "gone", "status": "failed_to_download", "error_kind": "timeout", "error_message": "slow"}]
    out, stderr, code = subsample(python, records, "--model", "optical_flow", "--model-option", "save_flow=true",
                                  "-w", "2")
    assert code == 0, stderr
    moving, still, broken, tone, gone = out
    assert moving["mean_optical_flow_magnitude"] > 0.1 > still["mean_optical_flow_magnitude"] >= 0
    # 2 s at 2 fps: 4 frames, 3 flows; the shorter side scaled to 16 (160x120 -> 21x16)
    assert len(moving["mean_optical_flow_magnitude_per_frame"]) == 3
    assert moving["optical_flow_fps"] == 2 and moving["optical_flow_downsample_size"] == 16
    assert moving["optical_flow_dtype"] == "float16"
    np = pytest.importorskip("numpy")
    flow = np.load(io.BytesIO(moving["files"]["optical_flow.npy"]))
    assert flow.shape == (3, 16, 21, 2) and flow.dtype == np.float16
    assert abs(float(np.linalg.norm(flow.astype(np.float32), axis=-1).mean())
               - moving["mean_optical_flow_magnitude"]) < 0.01
    assert (broken["status"], broken["error_kind"]) == ("failed_to_subsample", "decode_error")
    assert (tone["status"], tone["error_kind"], tone["error_message"]) == ("failed_to_subsample", "rejected",
                                                                           "no video stream")
    assert gone == records[4]
    assert "5 records read, 5 written: success 2, failed_to_subsample 2, failed_to_download 1" in stderr


def test_optical_flow_options_change_the_measure(python, media):
    out, stderr, code = subsample(python, [record("moving", "moving.mp4", media)], "--model", "optical_flow",
                                  "--model-option", "fps=5", "--model-option", "downsample_size=32",
                                  "--model-option", "detector_args=0.5,2,9,2,5,1.1,0", "-w", "1")
    assert code == 0, stderr
    assert len(out[0]["mean_optical_flow_magnitude_per_frame"]) == 9  # 10 frames at 5 fps
    assert out[0]["optical_flow_downsample_size"] == 32 and "files" in out[0]
    assert "optical_flow.npy" not in out[0]["files"]


def test_whisper_transcribes_audio_and_video_with_a_tiny_model(python, media, tiny):
    records = [record("tone", "tone.wav", media), record("video", "moving.mp4", media),
               record("mute", "mute.mp4", media)]
    out, stderr, code = subsample(python, records, "--model", "whisper", "--model-option", f"model={tiny['whisper']}",
                                  "--model-option", "language=en", "--model-option", "temperature=0",
                                  "--batch-size", "2", "--device", "auto", "-w", "1")
    assert code == 0, stderr
    for done in out[:2]:
        transcript = done["whisper_transcript"]
        assert done["status"] == "success" and transcript["language"] == "en"
        assert isinstance(transcript["text"], str) and transcript["segments"]
        assert all(set(part) == {"start", "end", "text"} and 0 <= part["start"] <= part["end"] <= 30
                   for part in transcript["segments"])
        assert done["files"]  # the payload stays
    assert (out[2]["status"], out[2]["error_kind"], out[2]["error_message"]) == ("failed_to_subsample", "rejected",
                                                                                 "no audio stream")


def test_a_whisper_model_that_cannot_be_loaded_ends_the_run(python, media, tmp_path):
    missing = tmp_path / "nothing.pt"
    out, stderr, code = subsample(python, [record("tone", "tone.wav", media)], "--model", "whisper",
                                  "--model-option", f"model={missing}", "-w", "1")
    assert code == 1 and out == []
    assert f"whisper model '{missing}' cannot be loaded" in stderr


def test_captions_of_frames_and_images_with_a_tiny_model(python, media, tiny):
    records = [record("video", "moving.mp4", media, caption="given"), record("picture", "picture.png", media),
               record("tone", "tone.wav", media)]
    out, stderr, code = subsample(python, records, "--model", "caption", "--model-option", f"model={tiny['caption']}",
                                  "--model-option", "frames=3", "--model-option", "max_new_tokens=5", "-w", "1")
    assert code == 0, stderr
    video, picture, tone = out
    assert len(video["frame_captions"]) == 3 and video["generated_caption"] == video["frame_captions"][1]
    assert video["caption"] == "given"
    assert len(picture["frame_captions"]) == 1 and isinstance(picture["generated_caption"], str)
    words = {"", "a", "cat", "dog", "on", "the", "road", "red", "car"}  # the tiny tokenizer's
    assert set(" ".join(video["frame_captions"] + picture["frame_captions"]).split(" ")) <= words
    assert (tone["status"], tone["error_kind"]) == ("failed_to_subsample", "rejected")


def test_a_caption_model_that_is_no_model_ends_the_run(python, media, tmp_path):
    out, stderr, code = subsample(python, [record("p", "picture.png", media)], "--model", "caption",
                                  "--model-option", f"model={tmp_path}", "-w", "1")
    assert code == 1 and f"caption model '{tmp_path}' cannot be loaded" in stderr


@pytest.mark.skipif(os.path.exists("/dev/nvidiactl"), reason="a GPU is here")  # (NVIDIA's driver device)
def test_cuda_asked_without_a_gpu_is_a_usage_problem(python, media):
    out, stderr, code = subsample(python, [record("p", "picture.png", media)], "--model", "caption",
                                  "--device", "cuda", "-w", "1")
    assert code == 2 and "--device cuda: torch sees no GPU here" in stderr



ALL_IN_ONE = r"""
import json, sys
import any2dataset
report = any2dataset.video2dataset(url_list=sys.argv[1], output_folder=sys.argv[2], output_format="webdataset",
                                   caption_col="caption", config=json.loads(sys.argv[3]), quiet=True)
print(json.dumps(report["statuses"]))
"""


def test_the_video2dataset_all_in_one_runs_the_model_subsamplers(python, media, tiny, tmp_path):
    """video2dataset's OpticalFlowSubsampler (with its optical_flow config's reading settings),
    WhisperSubsampler and CaptionSubsampler in a download: their fields in the .json and the
    metadata parquet, the flow as a payload, the caption as the .txt."""
    served = tmp_path / "served"
    served.mkdir()
    (served / "moving.mp4").write_bytes(media["moving.mp4"])
    (served / "still.mp4").write_bytes(media["still.mp4"])
    config = {"subsampling": {"OpticalFlowSubsampler": {"args": {"detector": "cv2", "dtype": "fp16"}},
                              "WhisperSubsampler": {"args": {"model_name": tiny["whisper"], "batch_size": 2,
                                                             "compute_type": "float32"}},
                              "CaptionSubsampler": {"args": {"captioner_args": {"video_captioner": tiny["caption"],
                                                                                "prompt": None}}}},
              "reading": {"dataloader_args": {"resize_size": 16, "decoder_kwargs": {"fps": 2}}},
              "distribution": {"processes_count": 1, "thread_count": 2}}
    with serve_folder(served) as base:
        listed = tmp_path / "list.csv"
        listed.write_text(f"url,caption\n{base}/moving.mp4,given\n{base}/still.mp4,given\n{base}/missing.mp4,given\n")
        done = subprocess.run([str(python), "-c", ALL_IN_ONE, str(listed), str(tmp_path / "out"), json.dumps(config)],
                              capture_output=True, text=True, timeout=600, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert done.returncode == 0, done.stderr[-3000:]
    table = pq.read_table(tmp_path / "out" / "00000.parquet").to_pylist()
    statuses = json.loads(done.stdout.splitlines()[-1])
    assert (statuses["success"], statuses["failed_to_download"]) == (2, 1), table
    rows = {row["url"].rpartition("/")[2]: row for row in table}
    assert rows["moving.mp4"]["mean_optical_flow_magnitude"] > rows["still.mp4"]["mean_optical_flow_magnitude"]
    assert rows["moving.mp4"]["optical_flow_fps"] == 2
    assert rows["missing.mp4"]["mean_optical_flow_magnitude"] is None
    with tarfile.open(tmp_path / "out" / "00000.tar") as tar:
        names = tar.getnames()
        key = rows["moving.mp4"]["key"]
        sample = json.loads(tar.extractfile(f"{key}.json").read())
        caption = tar.extractfile(f"{key}.txt").read().decode()
    assert f"{key}.optical_flow.npy" in names and f"{key}.mp4" in names
    assert set(sample["whisper_transcript"]) == {"text", "language", "segments"}
    assert len(sample["mean_optical_flow_magnitude_per_frame"]) == 3
    # the generated caption replaces the list's (the .txt and the field), as video2dataset's does
    assert caption == sample["caption"] and isinstance(caption, str) and caption != "given"
    assert rows["moving.mp4"]["caption"] == caption
