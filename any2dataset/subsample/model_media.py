"""What the shipped models read from a record: video frames and audio samples, decoded by
ffmpeg into numpy arrays.

The payload goes to a temporary file (mp4 needs seeking) and ffmpeg writes raw data to a
pipe: frames as PPM/PGM images (each says its own size, so the size after scaling needs no
probing), audio as 16-bit mono PCM. Every call has a time limit. What cannot be read raises
`Unusable(kind, message)`, which a model turns into the record's failure.
"""

import os
import shutil
import subprocess
import tempfile

from .. import record as rec
from ..errors import MissingExtra, MissingTool
from .video import INSTALL_HINT, media_payload

MESSAGE_LENGTH = 200


class Unusable(Exception):
    """The record's media cannot be read: error_kind and message for its failure."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind
        self.message = message


def numpy(feature: str, extra: str):
    try:
        import numpy
    except ImportError:
        raise MissingExtra(feature, extra, "numpy") from None
    return numpy


def ffmpeg() -> str:
    path = shutil.which("ffmpeg")
    if path is None:
        raise MissingTool(f"the model stages need ffmpeg, not found on PATH: {INSTALL_HINT}")
    return path


def media(record: dict) -> tuple[str, bytes]:
    """The record's audio or video payload (extension, bytes); Unusable when it has none."""
    extension = media_payload(record)
    if extension is None:
        raise Unusable("rejected", "no audio or video payload")
    return extension, record[rec.FILES][extension]


def video_frames(payload: bytes, extension: str, *, fps: float | None, size: int | None, gray: bool = False,
                 count: int | None = None, timeout: float = 120.0):
    """The frames as a uint8 array (n, height, width) if gray, else (n, height, width, 3):
    at `fps` (None: every frame), the shorter side scaled to `size` (None: as it is), and
    with `count`, that many frames evenly spread over the video instead."""
    np = numpy("decoding frames", "optical-flow")
    filters = []
    with tempfile.TemporaryDirectory(prefix="a2d-model-") as folder:
        path = _written(folder, extension, payload)
        if count is not None:
            duration = _duration(path, timeout)
            fps = count / duration if duration else None
        if fps is not None:
            filters.append(f"fps={fps:.6g}")
        if size is not None:
            filters.append(f"scale='if(lte(iw,ih),{size},-1)':'if(lte(iw,ih),-1,{size})'")
        command = [ffmpeg(), "-nostdin", "-hide_banner", "-loglevel", "error", "-i", path, "-map", "0:v:0",
                   "-an", "-sn", *(["-vf", ",".join(filters)] if filters else []), "-f", "image2pipe",
                   "-c:v", "pgm" if gray else "ppm", "pipe:1"]
        output = _run(command, timeout, folder)
    frames = _netpbm_frames(output, np)
    if count is not None:
        frames = frames[:count]
    if not frames:
        raise Unusable("decode_error", "no video frames decoded")
    return np.stack(frames)


def audio_samples(payload: bytes, extension: str, *, rate: int = 16000, timeout: float = 120.0):
    """The audio track as float32 mono samples in [-1, 1] at `rate` Hz."""
    np = numpy("decoding audio", "whisper")
    with tempfile.TemporaryDirectory(prefix="a2d-model-") as folder:
        path = _written(folder, extension, payload)
        command = [ffmpeg(), "-nostdin", "-hide_banner", "-loglevel", "error", "-i", path, "-map", "0:a:0",
                   "-vn", "-ac", "1", "-ar", str(rate), "-f", "s16le", "pipe:1"]
        output = _run(command, timeout, folder)
    if not output:
        raise Unusable("decode_error", "no audio decoded")
    return np.frombuffer(output, np.int16).astype(np.float32) / 32768.0


def _written(folder: str, extension: str, payload: bytes) -> str:
    # the extension only helps ffmpeg guess; a name we made keeps odd ones out of the command
    suffix = extension.rpartition(".")[2]
    path = os.path.join(folder, "media." + (suffix if suffix.isalnum() else "bin"))
    with open(path, "wb") as file:
        file.write(payload)
    return path


def _duration(path: str, timeout: float) -> float | None:
    probe = shutil.which("ffprobe")
    if probe is None:
        raise MissingTool(f"the model stages need ffprobe, not found on PATH: {INSTALL_HINT}")
    output = _run([probe, "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", path], timeout,
                  os.path.dirname(path))
    try:
        duration = float(output.strip() or "nan")
    except ValueError:
        return None
    return duration if duration > 0 else None


def _run(command: list[str], timeout: float, folder: str) -> bytes:
    name = os.path.basename(command[0])
    try:
        done = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise Unusable("timeout", f"{name} took longer than {timeout:g} s") from None
    if done.returncode != 0:
        lines = [line.strip() for line in done.stderr.decode("utf-8", "replace").splitlines() if line.strip()]
        last = lines[-1].replace(folder + os.sep, "") if lines else f"exit status {done.returncode}"
        if any("matches no streams" in line for line in lines):  # -map 0:a:0 on a silent video, 0:v:0 on audio
            raise Unusable("rejected", f"no {'audio' if '0:a:0' in command else 'video'} stream")
        raise Unusable("decode_error", f"{name}: {last}"[:MESSAGE_LENGTH])
    return done.stdout


def _netpbm_frames(data: bytes, np) -> list:
    """Binary PPM (P6) / PGM (P5) images one after another, as arrays."""
    frames, at = [], 0
    while at < len(data):
        fields, at = _header(data, at)
        magic, width, height, _ = fields
        channels = 3 if magic == b"P6" else 1
        end = at + width * height * channels
        pixels = np.frombuffer(data[at:end], np.uint8)
        if pixels.size != width * height * channels:
            break  # a cut last frame
        frames.append(pixels.reshape((height, width, channels) if channels == 3 else (height, width)))
        at = end
    return frames


def _header(data: bytes, at: int) -> tuple[tuple, int]:
    """Netpbm's header: magic, width, height, maxval, separated by whitespace; one byte after."""
    fields = []
    while len(fields) < 4:
        while data[at:at + 1].isspace():
            at += 1
        start = at
        while at < len(data) and not data[at:at + 1].isspace():
            at += 1
        fields.append(data[start:at])
    magic, width, height, maxval = fields[0], int(fields[1]), int(fields[2]), int(fields[3])
    return (magic, width, height, maxval), at + 1
