"""Scene cuts of a video, from ffmpeg's scene score, as video2dataset's `cuts` field.

ffmpeg's `select` filter scores each frame against the one before (`scene`: 0 for the same
picture, near 1 for a new one; it is the mean absolute pixel difference on a 0-255 scale,
divided by 100, and low for steady motion), and `metadata=print` writes every frame's score
to stdout, so one decoding pass gives the frame count and all the scores; the threshold and
the minimum scene length are applied here, in the way PySceneDetect's ContentDetector (which
video2dataset uses) applies them:

- a frame whose score is at least the threshold starts a new scene (a cut),
- unless it is closer than the minimum scene length (in frames) to the previous cut kept, or
  to the first frame: a cut so dropped does not count as the previous cut.

Scenes are frame ranges [start, end) of the original video, covering it all ([[0, N]] when
there is no cut), as video2dataset's CutDetectionSubsampler gives them:
`{"cuts_original_fps": [[0, 25], [25, 65], ...], "original_fps": 25.0}`, plus
`cuts_{fps}` for each extra frame rate the detection also ran at (frames dropped to that
rate first, the cuts still in frames of the original video). With mode "longest" only the
longest scene is kept. This module builds the commands and reads their output; the video
transform runs them.
"""

import math
import re

CUT_MODES = ("all", "longest")
# what `metadata=print:file=-` writes for each frame: "frame:7    pts:3584    pts_time:0.28"
# then "lavfi.scene_score=0.000000"
_FRAME = re.compile(rb"frame:\s*\d+\s+pts:\s*\S+\s+pts_time:\s*(\S+)")
_SCORE = re.compile(rb"lavfi\.scene_score=(\S+)")


def scan_command(ffmpeg: str, source: str, stream: int, fps: float | None = None) -> list[str]:
    """ffmpeg's command printing each frame's time and scene score of video stream `stream`
    (dropped to `fps` first, if given) to stdout."""
    filters = ([f"fps={fps:g}"] if fps else []) + ["select='gte(scene,0)'", "metadata=print:file=-"]
    return [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-i", source, "-map", f"0:{stream}",
            "-an", "-sn", "-dn", "-vf", ",".join(filters), "-f", "null", "-"]


def parse_scores(output: bytes) -> list[tuple[float, float]]:
    """(time in seconds, scene score) of each frame, from scan_command's output; a frame
    whose score line is missing scores 0."""
    frames: list[list[float]] = []
    for line in output.splitlines():
        frame = _FRAME.match(line)
        if frame is not None:
            frames.append([_number(frame.group(1)), 0.0])
            continue
        score = _SCORE.match(line)
        if score is not None and frames:
            frames[-1][1] = _number(score.group(1))
    return [(time, score) for time, score in frames]


def cut_frames(scores: list[float], threshold: float, min_frames: int,
               frames: list[int] | None = None) -> list[int]:
    """The frames that start a new scene: score at least `threshold`, at least `min_frames`
    after the previous cut kept (or the first frame). `frames` numbers the scores in frames of
    the original video when they come from fewer frames (default: 0, 1, 2...)."""
    cuts = []
    last = 0
    for frame, score in zip(range(len(scores)) if frames is None else frames, scores):
        if frame and score >= threshold and frame - last >= min_frames:
            cuts.append(frame)
            last = frame
    return cuts


def scenes(cuts: list[int], frame_count: int, mode: str = "all") -> list[list[int]]:
    """[start, end) frame ranges between the cuts, over all `frame_count` frames; with mode
    "longest" only the longest (the first of equals), as video2dataset picks it."""
    bounds = [0, *cuts, frame_count]
    ranges = [[start, end] for start, end in zip(bounds, bounds[1:]) if end > start]
    if mode == "longest" and ranges:
        ranges = [max(ranges, key=lambda r: r[1] - r[0])]
    return ranges


def min_frames(fps: float, min_seconds: float, min_count: int) -> int:
    """The minimum scene length in frames: the longer of `min_count` frames and `min_seconds`."""
    return max(min_count, math.ceil(min_seconds * fps - 1e-6))


def original_frames(times: list[float], fps: float) -> list[int]:
    """Frames of a video dropped to another rate, as frame numbers of the original (from their times)."""
    start = times[0] if times else 0.0
    return [round((time - start) * fps) for time in times]


def framerate_key(fps: float) -> str:
    """video2dataset's key of the cuts detected at another frame rate: cuts_5, cuts_2.5."""
    return f"cuts_{fps:g}"


def clip_spans(cuts: dict) -> list[tuple[float, float]]:
    """The scenes in seconds (frames / original_fps), as video2dataset turns cuts into clips."""
    fps = cuts["original_fps"]
    return [(start / fps, end / fps) for start, end in cuts["cuts_original_fps"]]


def _number(text: bytes) -> float:
    try:
        value = float(text)
    except ValueError:
        return 0.0
    return value if math.isfinite(value) else 0.0
