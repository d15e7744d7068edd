"""The optical flow model: OpenCV's Farneback method on CPU, as video2dataset's
OpticalFlowSubsampler with its cv2 detector (the optical-flow extra: opencv-python-headless).

The video is decoded by ffmpeg at `fps` frames a second (video2dataset's optical_flow config:
2), in grey, its shorter side scaled to `downsample_size` pixels (its resize_size: 16); the
flow between each frame and the next is computed with Farneback's parameters (`detector_args`:
pyr_scale, levels, winsize, iterations, poly_n, poly_sigma, flags; default 0.5, 3, 15, 3, 5,
1.2, 0). The record gets video2dataset's fields:

- `mean_optical_flow_magnitude`: the mean length of the flow vectors over the clip, in pixels
  of the scaled frames per frame step;
- `mean_optical_flow_magnitude_per_frame`: that mean for each pair of frames (n - 1 numbers);
- `optical_flow_fps`, `optical_flow_downsample_size`, `optical_flow_dtype`: how it was measured;

and with `save_flow=true` the flow itself as a payload `optical_flow.npy` (numpy's format,
shape (n - 1, height, width, 2), in `dtype`: fp16 or fp32), as video2dataset writes it.
A video with fewer than two frames fails with `rejected`.
"""

import functools
import inspect
import io

from ..errors import MissingExtra, UsageProblem
from .model_media import Unusable, media, numpy, video_frames
from .models import failed, flag, number

DEFAULT_ARGS = (0.5, 3, 15, 3, 5, 1.2, 0)  # Farneback's, as video2dataset's Cv2Detector
DTYPES = {"fp16": "float16", "fp32": "float32", "float16": "float16", "float32": "float32"}


def optical_flow(records: list[dict], *, fps="2", downsample_size="16", detector_args=None, dtype="fp16",
                 save_flow="false", timeout="120") -> list[dict]:
    settings = _settings(fps=fps, downsample_size=downsample_size, detector_args=_hashable(detector_args),
                         dtype=dtype, save_flow=save_flow, timeout=timeout)
    cv2, np = _cv2(), numpy("the optical_flow model", "optical-flow")
    return [_one(record, settings, cv2, np) for record in records]


def _one(record: dict, settings: dict, cv2, np) -> dict:
    try:
        extension, payload = media(record)
        frames = video_frames(payload, extension, fps=settings["fps"], size=settings["downsample_size"], gray=True,
                              timeout=settings["timeout"])
    except Unusable as problem:
        return failed(record, problem.kind, problem.message)
    if len(frames) < 2:
        return failed(record, "rejected", f"{len(frames)} frame at {settings['fps']:g} fps: optical flow needs two")
    flow = np.stack([cv2.calcOpticalFlowFarneback(before, after, None, *settings["detector_args"])
                     for before, after in zip(frames[:-1], frames[1:])])
    per_frame = np.linalg.norm(flow, axis=-1).mean(axis=(1, 2))
    record.update(mean_optical_flow_magnitude=float(per_frame.mean()),
                  mean_optical_flow_magnitude_per_frame=[float(value) for value in per_frame],
                  optical_flow_fps=settings["fps"], optical_flow_downsample_size=settings["downsample_size"],
                  optical_flow_dtype=settings["dtype"])
    if settings["save_flow"]:
        out = io.BytesIO()
        np.save(out, flow.astype(settings["dtype"]))
        record["files"]["optical_flow.npy"] = out.getvalue()
    return record


@functools.cache
def _settings(**given) -> dict:
    detector_args = given["detector_args"]
    if detector_args is None or detector_args == "":
        detector_args = DEFAULT_ARGS
    elif isinstance(detector_args, str):
        detector_args = tuple(part for part in detector_args.replace(" ", "").split(",") if part)
    if len(detector_args) != 7:
        raise UsageProblem("model option detector_args: expected 7 numbers (pyr_scale, levels, winsize, "
                           f"iterations, poly_n, poly_sigma, flags), not {given['detector_args']!r}")
    kinds = (float, int, int, int, int, float, int)
    detector_args = tuple(number("detector_args", value, kind) for value, kind in zip(detector_args, kinds))
    if str(given["dtype"]) not in DTYPES:
        raise UsageProblem(f"model option dtype: one of {', '.join(DTYPES)}, not {given['dtype']!r}")
    return {"fps": number("fps", given["fps"], float, 0.001),
            "downsample_size": number("downsample_size", given["downsample_size"], int, 2),
            "detector_args": detector_args, "dtype": DTYPES[str(given["dtype"])],
            "save_flow": flag("save_flow", given["save_flow"]), "timeout": number("timeout", given["timeout"], float,
                                                                                  0.001)}


def _cv2():
    try:
        import cv2
    except ImportError:
        raise MissingExtra("the optical_flow model", "optical-flow", "OpenCV (opencv-python-headless)") from None
    return cv2


def check(options: dict) -> None:
    """In the parent, before any work: the extra and the option values."""
    _cv2()
    _settings(**{**_DEFAULTS, **{key: _hashable(value) for key, value in options.items()}})


def _hashable(value):
    return tuple(value) if isinstance(value, list) else value


_DEFAULTS = {name: parameter.default for name, parameter in inspect.signature(optical_flow).parameters.items()
             if parameter.kind is inspect.Parameter.KEYWORD_ONLY}
optical_flow.check = check
