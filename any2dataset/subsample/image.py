"""Images, with img2dataset's options and meanings, on Pillow (extra `image`).

Resize modes: no; keep_ratio (shorter side to image_size); keep_ratio_largest
(longer side to image_size); center_crop (shorter side to image_size, then the
centre square); border (longer side to image_size, then padded to a square with
white). With resize_only_if_bigger an image whose measured side is not larger than
image_size is left as it is (no border, no crop), as in img2dataset. Transparent
images are composited on white; grey images stay grey. Records get width, height,
original_width, original_height and, unless turned off, the EXIF tags as JSON text;
refused images get img2dataset's error message and no sizes.

Sizes, refusals and messages are img2dataset's (checked against it by
tests/test_img2dataset_resize.py); pixels differ by about 1-2 grey levels on average,
as Pillow's filters are not OpenCV's.

JPEGs are decoded at a reduced scale when the target is at most a third of their
size (Pillow's draft mode: the JPEG decoder skips detail the output cannot show),
which is where most of the time of resizing large photos goes.
"""

import io
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from .. import record as rec
from ..errors import MissingExtra, UsageProblem

RESIZE_MODES = ("no", "border", "keep_ratio", "keep_ratio_largest", "center_crop")
ENCODE_FORMATS = {"jpg": ("JPEG", "image/jpeg"), "png": ("PNG", "image/png"), "webp": ("WEBP", "image/webp")}
IMAGE_EXTENSIONS = frozenset({"jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff", "ico", "ppm", "pgm",
                              "pbm", "jfif", "avif", "heic"})
INTERPOLATIONS = ("nearest", "linear", "bilinear", "cubic", "bicubic", "area", "lanczos", "lanczos4")
NON_IMAGES = ("fail", "keep")
GREY_MODES = frozenset({"1", "L", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
# img2dataset's messages (its stats count them by text, as ours do).
TOO_SMALL, AREA_TOO_LARGE, ASPECT_TOO_LARGE = "image too small", "image area too large", "aspect ratio too large"
DECODE_ERROR = "Image decoding error"
DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's own decompression-bomb threshold (about 0.25 GB of RGBA)
# Interpolations as Pillow's filters. OpenCV's INTER_AREA weighs each source pixel by the part of it
# an output pixel covers; Pillow's BOX takes whole pixels or none, 2-3 grey levels off at ratios such
# as 640 -> 341, and its HAMMING comes closest (measured against img2dataset:
# tests/test_img2dataset_resize.py).
FILTERS = {"nearest": "NEAREST", "linear": "BILINEAR", "bilinear": "BILINEAR", "cubic": "BICUBIC",
           "bicubic": "BICUBIC", "area": "HAMMING", "lanczos": "LANCZOS", "lanczos4": "LANCZOS"}


@dataclass
class ImageOptions:
    image_size: int = 256
    resize_mode: str = "border"
    resize_only_if_bigger: bool = False
    upscale_interpolation: str = "lanczos"
    downscale_interpolation: str = "area"
    encode_format: str = "jpg"
    encode_quality: int | None = None  # jpg and webp quality (95), png compression level (9)
    skip_reencode: bool = False
    min_image_size: int = 0
    max_image_area: float = float("inf")
    max_aspect_ratio: float = float("inf")
    extract_exif: bool = True
    max_pixels: int = DEFAULT_MAX_PIXELS  # refuse larger images before decoding them
    # A payload that is not an image: failed_to_subsample (as img2dataset counts it), or kept as it is.
    non_images: str = "fail"

    def __post_init__(self):
        if self.resize_mode not in RESIZE_MODES:
            raise UsageProblem(f"unknown resize mode {self.resize_mode!r} (one of {', '.join(RESIZE_MODES)})")
        if self.encode_format not in ENCODE_FORMATS:
            raise UsageProblem(f"unknown encode format {self.encode_format!r} (one of jpg, png, webp)")
        for name in ("upscale_interpolation", "downscale_interpolation"):
            if getattr(self, name) not in INTERPOLATIONS:
                raise UsageProblem(f"unknown {name.replace('_', ' ')} {getattr(self, name)!r}")
        if self.non_images not in NON_IMAGES:
            raise UsageProblem(f"unknown non-images policy {self.non_images!r} (one of {', '.join(NON_IMAGES)})")
        if self.encode_quality is None:
            self.encode_quality = 9 if self.encode_format == "png" else 95
        if self.encode_format == "png" and not 0 <= self.encode_quality <= 9:
            # img2dataset refuses it at the start too; Pillow would fail every image instead
            raise UsageProblem(f"for png, encode quality is the compression level, between 0 and 9 "
                               f"(got {self.encode_quality})")


def already_encoded_as(data: bytes, encode_format: str) -> bool:
    """Whether --skip-reencode may keep these bytes: img2dataset's test (Python's imghdr on the
    first bytes), so a JPEG without a JFIF or Exif header (CMYK, Adobe, ICC first) is re-encoded."""
    if encode_format == "jpg":
        return data[6:10] in (b"JFIF", b"Exif") or data[:4] == b"\xff\xd8\xff\xdb"
    if encode_format == "png":
        return data.startswith(b"\x89PNG\r\n\x1a\n")
    return data.startswith(b"RIFF") and data[8:12] == b"WEBP"


class _Rejected(Exception):
    """An image the options refuse: failed_to_subsample with error_kind `rejected`."""


def require_pillow():
    try:
        from PIL import Image
    except ImportError:
        raise MissingExtra("image resizing", "image", "Pillow") from None
    return Image


def is_image(extension: str, record: dict) -> bool:
    return extension in IMAGE_EXTENSIONS or (record.get("mime") or "").startswith("image/")


def image_payload(record: dict) -> str | None:
    for extension in record.get(rec.FILES) or {}:
        if is_image(extension, record):
            return extension
    return None


def image_transform(options: ImageOptions) -> Callable[[dict], list[dict]]:
    """One record in, a list of one record out (see the module's docstring). Raises
    MissingExtra now if Pillow is not installed."""
    return ImageTransform(options)


def measured_side(resize_mode: str, width: int, height: int) -> int:
    """The side a resize mode brings to image_size: the shorter for keep_ratio and
    center_crop, the longer for the others."""
    return min(width, height) if resize_mode in ("keep_ratio", "center_crop") else max(width, height)


def target_size(options: ImageOptions, width: int, height: int) -> tuple[int, int] | None:
    """The size to resize to before any crop or border, or None when the mode leaves the image as it
    is. img2dataset's rules: no resizing at all with --resize-only-if-bigger unless the side that
    the mode measures (shorter for keep_ratio and center_crop, longer for border and
    keep_ratio_largest) is larger than image_size: then no crop and no border either."""
    if options.resize_mode == "no":
        return None
    side = measured_side(options.resize_mode, width, height)
    if options.resize_only_if_bigger and side <= options.image_size:
        return None
    scale = options.image_size / side
    return max(1, round(width * scale)), max(1, round(height * scale))


def refusal(options: ImageOptions, width: int, height: int) -> str | None:
    """Why the options refuse an image of this size (img2dataset's message), from its header,
    before decoding; None if they do not. (img2dataset decodes first: a broken image that is
    also refused is a decode error there.)"""
    if width * height > options.max_pixels:
        return f"decompression bomb: {width}x{height} is over {options.max_pixels:,} pixels"
    if min(width, height) < options.min_image_size:
        return TOO_SMALL
    if width * height > options.max_image_area:
        return AREA_TOO_LARGE
    if max(width, height) / max(1, min(width, height)) > options.max_aspect_ratio:
        return ASPECT_TOO_LARGE
    return None


def has_alpha(image) -> bool:
    """What OpenCV decodes with 4 channels, which img2dataset composites on white and always
    re-encodes (a grey PNG's single transparent value is not among them: it stays grey)."""
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode in ("P", "RGB") and "transparency" in image.info)


def flatten(image):
    """RGB, with transparency composited on white; grey images stay grey (L), as img2dataset
    writes them."""
    from PIL import Image

    if has_alpha(image):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, image).convert("RGB")
    if image.mode in ("L", "RGB"):
        return image
    return image.convert("L" if image.mode in GREY_MODES else "RGB")


def fit(image, resize_mode: str, size: int):
    """An image resized to its target size, cut to the centre square (center_crop) or
    padded with white to a square (border)."""
    from PIL import Image

    w, h = image.size
    if resize_mode == "center_crop":
        left, top = (w - size) // 2, (h - size) // 2
        return image.crop((left, top, left + size, top + size))
    if resize_mode == "border" and (w < size or h < size):
        canvas = Image.new(image.mode, (max(w, size), max(h, size)), "white")
        canvas.paste(image, ((canvas.size[0] - w) // 2, (canvas.size[1] - h) // 2))
        return canvas
    return image


def exif_of(image) -> str | None:
    """The image's EXIF tags by name, as JSON text; None if it has none."""
    exif = image.getexif()
    if not exif:
        return None
    from PIL import ExifTags

    tags = {}
    for tag, value in exif.items():
        name = ExifTags.TAGS.get(tag, str(tag))
        if isinstance(value, bytes):
            value = value.decode("latin-1")[:200]
        elif not isinstance(value, (str, int, float)):
            value = str(value)
        tags[name] = value
    return orjson.dumps(tags).decode()


def encode(image, options: ImageOptions) -> bytes:
    """The image in --encode-format at --encode-quality (png: the compression level)."""
    pil_format, _mime = ENCODE_FORMATS[options.encode_format]
    out = io.BytesIO()
    if pil_format == "PNG":
        image.save(out, pil_format, compress_level=options.encode_quality)
    else:
        image.save(out, pil_format, quality=options.encode_quality)
    return out.getvalue()


def non_image(record: dict, options: ImageOptions) -> list[dict]:
    """A record without an image payload: failed (--non-images fail) if it has files, else as it is."""
    files = record.get(rec.FILES)
    if files and options.non_images == "fail":
        what = ", ".join(sorted(files)) + (f" ({record['mime']})" if record.get("mime") else "")
        return [rec.failure(record, "failed_to_subsample", "decode_error",
                            f"not an image: {what} (--non-images keep passes other files through)")]
    return [record]


class ImageTransform:
    """Images resized and re-encoded as img2dataset does; picklable (worker processes)."""

    def __init__(self, options: ImageOptions):
        self.options = options
        Image = require_pillow()
        # Checked from the header (refusal), before decoding; Pillow's own error stays as a second line.
        Image.MAX_IMAGE_PIXELS = options.max_pixels
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        # Pillow's warnings about odd files (corrupt EXIF, palette transparency) would flood stderr,
        # one per image of a crawl, about nothing anyone can act on: the image itself decodes or fails.
        warnings.filterwarnings("ignore", module=r"PIL\.")

    def __call__(self, record: dict) -> list[dict]:
        if record.get("status") not in (None, "success"):
            return [record]
        extension = image_payload(record)
        if extension is None:
            return non_image(record, self.options)
        from PIL import Image

        try:
            encoded = self.transform(record, record[rec.FILES][extension])
        except _Rejected as error:
            return [rec.failure(record, "failed_to_subsample", "rejected", str(error))]
        except Image.DecompressionBombError as error:
            return [rec.failure(record, "failed_to_subsample", "rejected", f"decompression bomb: {error}")]
        except (OSError, ValueError, SyntaxError):  # what Pillow raises for bytes it cannot decode
            return [rec.failure(record, "failed_to_subsample", "decode_error", DECODE_ERROR)]
        if encoded is not None:
            files = record[rec.FILES]
            del files[extension]
            files[self.options.encode_format] = encoded
            record["mime"] = ENCODE_FORMATS[self.options.encode_format][1]
            record["size"] = len(encoded)
        return [record]

    def transform(self, record: dict, data: bytes) -> bytes | None:
        """Decode, check, resize and encode one image's bytes, setting the record's sizes (and
        exif); None when the original bytes stay (--skip-reencode)."""
        from PIL import Image

        options = self.options
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            refused = refusal(options, width, height)
            if refused is not None:
                raise _Rejected(refused)
            target = target_size(options, width, height)
            self.draft(image, target)
            image.load()  # a broken image is refused even when its bytes would be kept, as img2dataset does
            if options.extract_exif:
                record["exif"] = exif_of(image)
            record["original_width"], record["original_height"] = width, height
            if (options.skip_reencode and target is None and not has_alpha(image)
                    and already_encoded_as(data, options.encode_format)):
                record["width"], record["height"] = width, height
                return None  # nothing to change: the original bytes stay
            image = self.resize(flatten(image), target, (width, height))
            record["width"], record["height"] = image.size
            return encode(image, options)

    @staticmethod
    def draft(image, target: tuple[int, int] | None) -> None:
        """A JPEG whose target is at most a third of its width is decoded at 1/2, 1/4 or 1/8
        scale, never below 1.5 times the target: closer to it the JPEG decoder's scaling would
        show (up to 2 grey levels off img2dataset's pixels)."""
        if target is not None and image.format == "JPEG" and target[0] * 3 <= image.size[0]:
            image.draft(image.mode, (target[0] * 3 // 2, target[1] * 3 // 2))

    def resize(self, image, target: tuple[int, int] | None, original: tuple[int, int]):
        """The flattened image at its target size, cropped or bordered; as it is for None.
        `original`: the size in the header (a drafted JPEG is decoded smaller)."""
        if target is None:
            return image
        if target != image.size:
            image = image.resize(target, self.filter_for(*original))
        return fit(image, self.options.resize_mode, self.options.image_size)

    def filter_for(self, width: int, height: int):
        """The downscale interpolation when the side the mode measures shrinks, else the upscale one."""
        from PIL import Image

        options = self.options
        shrinks = measured_side(options.resize_mode, width, height) > options.image_size
        name = options.downscale_interpolation if shrinks else options.upscale_interpolation
        return getattr(Image.Resampling, FILTERS[name])
