"""Ready-made transforms for the loader's samples; any callable sample -> sample works too.

    Dataset("urls.csv", transform=transforms.image(256, "center_crop", to="array"))

- `image(size, resize_mode, to)`: the sample's image decoded (Pillow: the image extra), resized
  as a2d-subsample and img2dataset resize (`border`, `center_crop`, `keep_ratio`, ...), as
  `sample["image"]`: a PIL image, or a numpy array (height, width, 3) of uint8 with to="array".
- `audio(rate, channels)`: the sample's audio (or a video's sound track) decoded by ffmpeg to
  float32 samples at `rate` Hz, as `sample["audio"]`: numpy (channels, samples) or raw bytes.
- `frames(fps, size)`: a video's frames at `fps`, scaled to size x size (a2d-subsample's crop
  mode), as `sample["frames"]`: numpy (frames, size, size, 3) of uint8.
A payload the transform cannot read raises, so the loader skips the sample and counts it.
"""

import shutil
import subprocess
import tempfile

from ..errors import MissingTool, UsageProblem
from ..filetypes import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS, VIDEO_EXTENSIONS


def _payload(sample: dict, extensions) -> tuple[str, bytes]:
    for name, data in sample.items():
        if not name.startswith("__") and isinstance(data, bytes) and name.split(".")[-1].lower() in extensions:
            return name, data
    raise ValueError(f"no payload among {sorted(extensions)} in sample {sample.get('__key__')}")


def image(size: int | None = None, resize_mode: str = "border", to: str = "pil"):
    from ..subsample.image import ImageOptions, image_transform, require_pillow

    require_pillow()
    if to not in ("pil", "array"):
        raise UsageProblem(f"to must be pil or array, not {to!r}")
    resize = None
    if size is not None:  # a2d-subsample's own resizing, kept lossless (png, no compression) for decoding
        resize = image_transform(ImageOptions(image_size=size, resize_mode=resize_mode, encode_format="png",
                                              encode_quality=0, extract_exif=False))

    def transform(sample: dict) -> dict:
        import io

        from PIL import Image

        extension, data = _payload(sample, IMAGE_EXTENSIONS)
        if resize is not None:
            [record] = resize({"key": sample.get("__key__"), "status": "success", "files": {extension: data}})
            if record.get("status") != "success":
                raise ValueError(record.get("error_message") or "the image could not be resized")
            data = record["files"]["png"]
        picture = Image.open(io.BytesIO(data)).convert("RGB")
        if to == "array":
            import numpy

            picture = numpy.asarray(picture)
        return {**sample, "image": picture}

    return transform


def _ffmpeg() -> str:
    found = shutil.which("ffmpeg")
    if not found:
        raise MissingTool("audio and video transforms need ffmpeg, not found on PATH (apt-get install ffmpeg)")
    return found


def _decode(data: bytes, extension: str, output: list[str], timeout: float = 120) -> bytes:
    with tempfile.NamedTemporaryFile(suffix="." + extension.split(".")[-1]) as source:
        source.write(data)
        source.flush()
        done = subprocess.run([_ffmpeg(), "-nostdin", "-hide_banner", "-loglevel", "error", "-i", source.name,
                               *output, "pipe:1"], capture_output=True, timeout=timeout)
    if done.returncode != 0 or not done.stdout:
        raise ValueError(f"ffmpeg: {done.stderr.decode('utf-8', 'replace').strip()[-200:] or 'no output'}")
    return done.stdout


def audio(rate: int = 16000, channels: int = 1, to: str = "array"):
    _ffmpeg()

    def transform(sample: dict) -> dict:
        extension, data = _payload(sample, (*AUDIO_EXTENSIONS, *VIDEO_EXTENSIONS))
        raw = _decode(data, extension, ["-vn", "-ac", str(channels), "-ar", str(rate), "-f", "f32le"])
        if to == "array":
            import numpy

            raw = numpy.frombuffer(raw, dtype="<f4").reshape(-1, channels).T.copy()
        return {**sample, "audio": raw, "audio_rate": rate}

    return transform


def frames(fps: float = 1.0, size: int = 224):
    _ffmpeg()

    def transform(sample: dict) -> dict:
        import numpy

        extension, data = _payload(sample, VIDEO_EXTENSIONS)
        scale = f"fps={fps},scale={size}:{size}:force_original_aspect_ratio=increase,crop={size}:{size}"
        raw = _decode(data, extension, ["-an", "-vf", scale, "-pix_fmt", "rgb24", "-f", "rawvideo"])
        return {**sample, "frames": numpy.frombuffer(raw, dtype=numpy.uint8).reshape(-1, size, size, 3)}

    return transform
