"""Model stages (a2d-subsample --model): the plug-in interface with a user's function, batches,
failures, worker processes, entry points, the missing extras' messages, and the frames and
audio the shipped models read (ffmpeg). The shipped models themselves run in the torch venv:
test_subsample_models_torch.py."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from any2dataset import record as rec
from any2dataset.errors import MissingExtra, UsageProblem
from any2dataset.plan import subsample_arguments
from any2dataset.subsample import SubsampleOptions, subsample
from any2dataset.subsample.models import ModelOptions, load_models, run_models
from any2dataset.subsample.select import Condition, Selection

ROOT = Path(__file__).resolve().parents[1]

USER_MODULE = '''
import os

from any2dataset.errors import UsageProblem


def sizes(records, *, suffix="", fail_on=None):
    """Adds each payload's size, the batch's length and the worker's pid."""
    for record in records:
        if fail_on and record["key"] == fail_on:
            raise ValueError("cannot read " + fail_on)
        record["payload_bytes" + suffix] = sum(len(p) for p in record.get("files", {}).values())
        record["batch"] = len(records)
        record["pid"] = os.getpid()
    return records


def upper(records, *, device="cpu"):
    for record in records:
        record["files"]["upper.bin"] = record["files"]["bin"].upper()
        record["device"] = device
    return records


def drops(records):
    return records[1:]


def refuses(records):
    raise UsageProblem("this model needs a licence key")
'''


@pytest.fixture
def plugins(tmp_path, monkeypatch):
    """A user's module on sys.path (and PYTHONPATH for the command's processes)."""
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "user_models.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(folder))
    sys.modules.pop("user_models", None)
    yield folder
    sys.modules.pop("user_models", None)


def records(count: int, failed: tuple[int, ...] = ()) -> list[dict]:
    return [{"key": f"{i:03d}", "status": "failed_to_download" if i in failed else "success",
             "files": {"bin": b"x" * i}} for i in range(count)]


def run(items, **options) -> list[dict]:
    return list(subsample(items, SubsampleOptions(sniff=False, models=ModelOptions(**options))))


def test_a_user_function_adds_fields_in_batches_and_failed_records_keep_their_place(plugins):
    out = run(records(7, failed=(3,)), models=("user_models:sizes",), options=("suffix=_n",), batch_size=3)
    assert [r["key"] for r in out] == [f"{i:03d}" for i in range(7)]
    assert out[3] == {"key": "003", "status": "failed_to_download", "files": {"bin": b"xxx"}}  # untouched
    assert [r.get("payload_bytes_n") for r in out] == [0, 1, 2, None, 4, 5, 6]
    # 3 records a call: 000-002, then 004 and 005 (003 is not given), then 006
    assert [r.get("batch") for r in out] == [3, 3, 3, None, 2, 2, 1]


def test_a_batch_size_larger_than_the_input_is_one_call(plugins):
    out = run(records(5), models=("user_models:sizes",), batch_size=64)
    assert {r["batch"] for r in out} == {5}


def test_a_record_the_model_fails_on_fails_alone(plugins):
    out = run(records(6), models=("user_models:sizes",), options=("fail_on=004",), batch_size=4)
    failed = [r for r in out if r["status"] != "success"]
    assert [r["key"] for r in failed] == ["004"]
    assert failed[0]["status"] == "failed_to_subsample" and failed[0]["error_kind"] == "other"
    assert failed[0]["error_message"] == "model user_models:sizes: ValueError: cannot read 004"
    assert "files" not in failed[0]
    assert all("payload_bytes" in r for r in out if r["status"] == "success")
    assert [r.get("batch") for r in out] == [4, 4, 4, 4, None, 1]  # 004's batch: each record tried alone


def test_a_model_that_returns_other_records_fails_its_batch(plugins):
    out = run(records(4), models=("user_models:drops",), batch_size=2)
    assert {r["status"] for r in out} == {"failed_to_subsample"}
    assert "returned 1 records for a batch of 2" in out[0]["error_message"]


def test_a_models_own_usage_problem_ends_the_run(plugins):
    with pytest.raises(UsageProblem, match="licence key"):
        run(records(2), models=("user_models:refuses",))


def test_payloads_and_the_device_reach_the_model_and_models_run_in_order(plugins):
    out = run(records(2), models=("user_models:upper", "user_models:sizes"), device="cpu")
    assert out[1]["files"]["upper.bin"] == b"X" and out[1]["device"] == "cpu"
    assert out[1]["payload_bytes"] == 2  # the second model saw the first one's payload


def test_where_filters_on_what_a_model_added(plugins):
    options = SubsampleOptions(sniff=False, models=ModelOptions(("user_models:sizes",)),
                               selection=Selection(where=(Condition.parse("payload_bytes >= 3"),)))
    assert [r["key"] for r in subsample(records(5), options)] == ["003", "004"]


def test_a_record_stream_runs_through_the_models_in_batches(plugins):
    options = ModelOptions(("user_models:sizes",), batch_size=2)
    out = list(run_models(iter(records(5, failed=(0,))), options))
    assert [r.get("batch") for r in out] == [None, 2, 2, 2, 2]


@pytest.mark.parametrize("options, message", [
    ({"models": ("user_models:nothing",)}, "user_models has no nothing"),
    ({"models": ("no_such_module:f",)}, "no module no_such_module"),
    ({"models": ("not_a_model",)}, "nor an entry point of group any2dataset.models"),
    ({"models": ("user_models:sizes",), "options": ("colour=red",)}, "takes an option 'colour'"),
    ({"models": ("user_models:sizes",), "options": ("upper.suffix=x",)}, "no model named upper"),
    ({"models": ("user_models:upper",), "options": ("upper.suffix=x",)}, "model upper takes no option 'suffix'"),
    ({"models": ("user_models:sizes",), "options": ("suffix",)}, "expected KEY=VALUE"),
    ({"models": ("user_models:sizes",), "batch_size": 0}, "--batch-size must be at least 1"),
    ({"models": ("user_models:sizes",), "device": "tpu"}, "--device must be one of"),
    ({"options": ("colour=red",)}, "--model-option without --model"),
])
def test_bad_models_and_options_are_usage_problems_before_any_work(plugins, options, message):
    with pytest.raises(UsageProblem, match=message):
        load_models(ModelOptions(**options))


def test_an_option_named_for_one_model_goes_to_that_model_only(plugins):
    models = load_models(ModelOptions(("user_models:sizes", "user_models:upper"),
                                      ("sizes.suffix=_s", "device=cpu")))
    assert models[0].options == {"suffix": "_s"}
    assert models[1].options == {"device": "cpu"}


def test_an_entry_point_names_a_model(plugins):
    dist = plugins / "user_models-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: user-models\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[any2dataset.models]\nsizer = user_models:sizes\n")
    out = run(records(2), models=("sizer",))
    assert [r["payload_bytes"] for r in out] == [0, 1]


def test_the_pipe_form_carries_the_models():
    options = SubsampleOptions(models=ModelOptions(("optical_flow", "m:f"), ("fps=4",), batch_size=3, device="cpu"))
    arguments = subsample_arguments(options)
    assert arguments[:10] == ["--model", "optical_flow", "--model", "m:f", "--model-option", "fps=4",
                              "--batch-size", "3", "--device", "cpu"]


def command(plugins, *arguments, input_records):
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(plugins)]))
    lines = b"".join(rec.dumps(r) for r in input_records)
    return subprocess.run([sys.executable, "-m", "any2dataset.subsample", "--no-sniff", *arguments], input=lines,
                          capture_output=True, env=environment, timeout=120)


def test_the_command_counts_failed_records_and_runs_models_in_worker_processes(plugins):
    done = command(plugins, "--model", "user_models:sizes", "--model-option", "fail_on=017", "--batch-size", "2",
                   "-w", "2", input_records=records(40, failed=(5,)))
    assert done.returncode == 0, done.stderr
    out = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["key"] for r in out] == [f"{i:03d}" for i in range(40)]  # in order
    assert "40 records read, 40 written: success 38, failed_to_download 1, failed_to_subsample 1" in \
        done.stderr.decode()
    pids = {r["pid"] for r in out if "pid" in r}
    assert len(pids) == 2 and os.getpid() not in pids
    assert max(r["batch"] for r in out if "batch" in r) == 2
    one = command(plugins, "--model", "user_models:sizes", "--model-option", "fail_on=017", "--batch-size", "2",
                  "-w", "1", input_records=records(40, failed=(5,)))
    def fields(record):  # which worker, and how the records were batched, differ
        return {k: v for k, v in record.items() if k not in ("pid", "batch")}

    assert [fields(json.loads(line)) for line in one.stdout.splitlines()] == [fields(r) for r in out]


def test_the_command_refuses_a_model_it_cannot_find(plugins):
    done = command(plugins, "--model", "user_models:nothing", input_records=records(1))
    assert done.returncode == 2
    assert "a2d-subsample: error: --model user_models:nothing: user_models has no nothing" in done.stderr.decode()


@pytest.mark.parametrize("name, module, extra", [("optical_flow", "cv2", "optical-flow"),
                                                 ("whisper", "whisper", "whisper"),
                                                 ("caption", "transformers", "caption")])
def test_a_shipped_model_without_its_extra_names_it(name, module, extra, monkeypatch):
    monkeypatch.setitem(sys.modules, module, None)  # as if not installed (None makes import fail)
    with pytest.raises(MissingExtra, match=rf"pip install 'any2dataset\[{extra}\]'"):
        load_models(ModelOptions((name,)))


def test_a_shipped_models_bad_option_is_a_usage_problem(monkeypatch):
    pytest.importorskip("cv2")
    with pytest.raises(UsageProblem, match="detector_args: expected 7 numbers"):
        load_models(ModelOptions(("optical_flow",), ("detector_args=1,2",)))


# The frames and audio the shipped models read, decoded by ffmpeg.

needs_ffmpeg = pytest.mark.skipif(not (shutil.which("ffmpeg") and shutil.which("ffprobe")),
                                  reason="ffmpeg and ffprobe are not on PATH")


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> bytes:
    """2 s of 160x120 video at 10 fps with a tone."""
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i",
                    "testsrc2=size=160x120:rate=10:duration=2", "-f", "lavfi", "-i", "sine=duration=2", "-shortest",
                    "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", str(path)],
                   check=True)
    return path.read_bytes()


@pytest.fixture(scope="module")
def tone(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("tone") / "tone.wav"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "sine=duration=1", str(path)],
                   check=True)
    return path.read_bytes()


@needs_ffmpeg
def test_frames_come_at_the_rate_and_size_asked(clip):
    pytest.importorskip("numpy")
    from any2dataset.subsample.model_media import video_frames

    grey = video_frames(clip, "mp4", fps=2, size=16, gray=True)
    assert grey.shape == (4, 16, 21) and str(grey.dtype) == "uint8"
    colour = video_frames(clip, "mp4", fps=None, size=None)
    assert colour.shape == (20, 120, 160, 3)
    assert video_frames(clip, "mp4", fps=None, size=48, count=3).shape == (3, 48, 64, 3)


@needs_ffmpeg
def test_audio_comes_as_16_khz_mono_and_unreadable_media_say_why(clip, tone):
    pytest.importorskip("numpy")
    from any2dataset.subsample.model_media import Unusable, audio_samples, video_frames

    samples = audio_samples(clip, "mp4")
    assert abs(len(samples) - 32000) < 1600 and str(samples.dtype) == "float32" and 0 < abs(samples).max() <= 1
    with pytest.raises(Unusable) as problem:
        video_frames(b"not a video", "mp4", fps=1, size=16)
    assert problem.value.kind == "decode_error" and "Invalid data" in problem.value.message
    with pytest.raises(Unusable) as problem:
        video_frames(tone, "wav", fps=1, size=16)
    assert (problem.value.kind, problem.value.message) == ("rejected", "no video stream")


# video2dataset's model subsamplers in a2d-video2dataset's config, as model stages.

def test_video2dataset_model_subsamplers_become_model_stages():
    from any2dataset.video_all_in_one import RUNNABLE_CONFIGS, _model_options, _subsampler_args

    config = RUNNABLE_CONFIGS["optical_flow"]
    models, fields = _model_options(_subsampler_args(config["subsampling"]), config["reading"])
    assert models == ModelOptions(("optical_flow",), ("optical_flow.fps=2.0", "optical_flow.downsample_size=16",
                                                      "optical_flow.dtype=fp16", "optical_flow.save_flow=true"))
    assert fields[:2] == ["mean_optical_flow_magnitude", "mean_optical_flow_magnitude_per_frame"]
    subsamplers = _subsampler_args({
        "OpticalFlowSubsampler": {"args": {"fps": 4, "downsample_size": 32,
                                           "detector_args": [0.5, 3, 15, 3, 5, 1.2, 0]}},
        "WhisperSubsampler": {"args": {"model_name": "small", "batch_size": 4, "compute_type": "float16",
                                       "download_root": "/models"}},
        "CaptionSubsampler": {"args": {"captioner_args": {"video_captioner": "/models/blip", "prompt": None}}}})
    models, fields = _model_options(subsamplers, {})
    assert models.models == ("optical_flow", "whisper", "caption") and models.batch_size == 4
    assert models.options == ("optical_flow.fps=4.0", "optical_flow.downsample_size=32", "optical_flow.dtype=fp16",
                              "optical_flow.save_flow=true", "optical_flow.detector_args=0.5,3,15,3,5,1.2,0",
                              "whisper.model=small", "whisper.fp16=true", "whisper.download_root=/models",
                              "caption.model=/models/blip", "caption.field=caption")
    assert fields[-2:] == ["whisper_transcript", "caption"]
    assert _model_options(_subsampler_args({}), {}) == (None, [])


def test_a_model_option_without_a_model_is_one_error_line(plugins):
    done = command(plugins, "--model-option", "colour=red", input_records=records(2))
    assert done.returncode == 2 and b"Traceback" not in done.stderr
    assert done.stderr.decode().strip().splitlines() == [
        "a2d-subsample: error: --model-option without --model: no model to give it to"]
