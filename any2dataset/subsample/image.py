"""Images, with img2dataset's options and meanings, on Pillow (extra `image`).

Resize modes: no; keep_ratio (shorter side to image_size); keep_ratio_largest
(longer side to image_size); center_crop (shorter side to image_size, then the
centre square); border (longer side to image_size, then padded to a square with
white). Transparent images are composited on white. Records get width, height,
original_width, original_height and, unless turned off, the EXIF tags as JSON text.

JPEGs are decoded at a reduced scale when the target is at most half their size
(Pillow's draft mode: the JPEG decoder skips detail the output cannot show), which
is where most of the time of resizing large photos goes.
"""

from collections.abc import Callable
from dataclasses import dataclass
import io
import re
import warnings

import orjson

from .. import record as rec
from ..errors import MissingExtra, UsageProblem

RESIZE_MODES = ("no", "border", "keep_ratio", "keep_ratio_largest", "center_crop")
ENCODE_FORMATS = {"jpg": ("JPEG", "image/jpeg"), "png": ("PNG", "image/png"), "webp": ("WEBP", "image/webp")}
IMAGE_EXTENSIONS = frozenset({"jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff", "ico", "ppm", "pgm",
                              "pbm", "jfif", "avif", "heic"})
INTERPOLATIONS = ("nearest", "linear", "bilinear", "cubic", "bicubic", "area", "lanczos", "lanczos4")
NON_IMAGES = ("fail", "keep")
DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's own decompression-bomb threshold (about 0.25 GB of RGBA)


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
    Image = require_pillow()
    # Checked below from the header, before decoding; Pillow's own error stays as a second line.
    Image.MAX_IMAGE_PIXELS = options.max_pixels
    warnings.simplefilter("ignore", Image.DecompressionBombWarning)
    # Pillow's warnings about odd files (corrupt EXIF, palette transparency) would flood stderr,
    # one per image of a crawl, about nothing anyone can act on: the image itself decodes or fails.
    warnings.filterwarnings("ignore", module=r"PIL\.")
    filters = {"nearest": Image.Resampling.NEAREST, "linear": Image.Resampling.BILINEAR,
               "bilinear": Image.Resampling.BILINEAR, "cubic": Image.Resampling.BICUBIC,
               "bicubic": Image.Resampling.BICUBIC, "area": Image.Resampling.BOX,
               "lanczos": Image.Resampling.LANCZOS, "lanczos4": Image.Resampling.LANCZOS}
    upscale, downscale = filters[options.upscale_interpolation], filters[options.downscale_interpolation]
    size = options.image_size
    pil_format, mime = ENCODE_FORMATS[options.encode_format]

    def target_size(width: int, height: int) -> tuple[int, int] | None:
        """The size to resize to before any crop or border, or None to keep the image as it is."""
        mode = options.resize_mode
        if mode == "no":
            return None
        if mode in ("keep_ratio", "center_crop"):
            side = min(width, height)
        else:  # border, keep_ratio_largest
            side = max(width, height)
        if side == size or (options.resize_only_if_bigger and side <= size):
            return None
        scale = size / side
        return max(1, round(width * scale)), max(1, round(height * scale))

    def flatten(image):
        """RGB, with transparency composited on white."""
        if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
            image = image.convert("RGBA")
            background = Image.new("RGBA", image.size, (255, 255, 255, 255))
            return Image.alpha_composite(background, image).convert("RGB")
        return image if image.mode == "RGB" else image.convert("RGB")

    def exif_of(image) -> str | None:
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

    def transform(record: dict) -> list[dict]:
        if record.get("status") not in (None, "success"):
            return [record]
        extension = image_payload(record)
        if extension is None:
            files = record.get(rec.FILES)
            if files and options.non_images == "fail":
                what = ", ".join(sorted(files)) + (f" ({record['mime']})" if record.get("mime") else "")
                return [rec.failure(record, "failed_to_subsample", "decode_error",
                                    f"not an image: {what} (--non-images keep passes other files through)")]
            return [record]
        data = record[rec.FILES][extension]
        try:
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                record["original_width"], record["original_height"] = width, height
                if width * height > options.max_pixels:
                    raise _Rejected(f"decompression bomb: {width}x{height} is over {options.max_pixels:,} pixels")
                if min(width, height) < options.min_image_size:
                    raise _Rejected(f"image too small: {width}x{height}, --min-image-size {options.min_image_size}")
                if width * height > options.max_image_area:
                    raise _Rejected(f"image area too large: {width}x{height}, "
                                    f"--max-image-area {options.max_image_area:g}")
                if max(width, height) / max(1, min(width, height)) > options.max_aspect_ratio:
                    raise _Rejected(f"aspect ratio too large: {width}x{height}, "
                                    f"--max-aspect-ratio {options.max_aspect_ratio:g}")
                if options.extract_exif:
                    record["exif"] = exif_of(image)
                target = target_size(width, height)
                resized = target or (width, height)
                square = resized == (size, size)
                crop = options.resize_mode == "center_crop" and not square and min(resized) >= size
                pad = options.resize_mode == "border" and not square
                if options.skip_reencode and target is None and not crop and not pad:
                    record["width"], record["height"] = width, height
                    return [record]  # nothing to change: the original bytes stay
                if target is not None and image.format == "JPEG" and target[0] * 2 <= width:
                    image.draft("RGB", target)  # decode at 1/2, 1/4 or 1/8 scale: never below target
                image = flatten(image)
                if target is not None:
                    method = downscale if target[0] < image.size[0] else upscale
                    image = image.resize(target, method)
                if crop:
                    w, h = image.size
                    left, top = (w - size) // 2, (h - size) // 2
                    image = image.crop((left, top, left + size, top + size))
                if pad:
                    w, h = image.size
                    canvas = Image.new("RGB", (max(w, size), max(h, size)), (255, 255, 255))
                    canvas.paste(image, ((canvas.size[0] - w) // 2, (canvas.size[1] - h) // 2))
                    image = canvas
                out = io.BytesIO()
                if pil_format == "PNG":
                    image.save(out, pil_format, compress_level=options.encode_quality)
                else:
                    image.save(out, pil_format, quality=options.encode_quality)
                record["width"], record["height"] = image.size
        except _Rejected as error:
            return [rec.failure(record, "failed_to_subsample", "rejected", str(error))]
        except Image.DecompressionBombError as error:
            return [rec.failure(record, "failed_to_subsample", "rejected", f"decompression bomb: {error}")]
        except (OSError, ValueError, SyntaxError) as error:  # what Pillow raises for bytes it cannot decode
            reason = re.sub(r" <[^>]*>", "", str(error))[:200]  # no object addresses: same input, same output
            return [rec.failure(record, "failed_to_subsample", "decode_error", f"cannot decode image: {reason}")]
        files = record[rec.FILES]
        del files[extension]
        files[options.encode_format] = out.getvalue()
        record["mime"] = mime
        record["size"] = len(files[options.encode_format])
        return [record]

    return transform
