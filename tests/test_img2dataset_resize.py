"""Image resizing against the real img2dataset (differential): every resize mode x
resize_only_if_bigger x skip_reencode on images smaller, larger, equal and mixed vs image_size,
every common pixel mode and input format, the refusal options, and the encode formats.

For each case img2dataset's Resizer (in its own venv, see img2dataset_env.py) and our
image_transform get the same bytes and options. They must agree on which images are refused and
with which error message, on width, height, original_width and original_height (what img2dataset
writes into its metadata), on whether the original bytes are kept, on the output format and on grey
vs colour; the pixels must be close (img2dataset resizes with OpenCV's INTER_AREA and
INTER_LANCZOS4, we with Pillow's BOX and LANCZOS).
"""

import io
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from img2dataset_env import img2dataset_resizer  # noqa: E402,F401  (a fixture)

Image = pytest.importorskip("PIL.Image")
ImageDraw = pytest.importorskip("PIL.ImageDraw")
np = pytest.importorskip("numpy")

from any2dataset.errors import UsageProblem  # noqa: E402
from any2dataset.subsample.image import ImageOptions, image_transform  # noqa: E402

# A test may wait for its venv, which conftest.py builds in the background (minutes on a fresh
# machine): longer than the suite's per-test limit.
pytestmark = pytest.mark.timeout(1800)

MODES = ("no", "border", "keep_ratio", "keep_ratio_largest", "center_crop")
SIZE = 64
# Relative to SIZE: smaller, equal (by either side), larger, and mixed (one side over, one under);
# landscape, portrait and square; 400x260 is decoded by JPEG draft (1/4 scale) before resizing.
SHAPES = [(52, 33), (33, 52), (40, 40), (64, 64), (64, 40), (40, 64), (100, 64), (150, 90), (90, 150),
          (128, 128), (100, 40), (40, 100), (400, 260)]
# Mean absolute difference of the decoded pixels (0-255) allowed between their output and ours
# (measured: at most about 2 at quality 95; about 4 at webp quality 40, where both encoders lose more).
MAX_MEAN_DIFF = 3.0
MAX_MEAN_DIFF_LOW_QUALITY = 6.0


def picture(width: int, height: int):
    """A photo-like test picture: smooth gradients, a filled shape and a hard diagonal edge."""
    x = np.linspace(0, 255, width)[None, :]
    y = np.linspace(0, 255, height)[:, None]
    rgb = np.stack([x + 0 * y, y + 0 * x, (x + y) / 2], -1).astype(np.uint8)
    image = Image.fromarray(rgb)
    draw = ImageDraw.Draw(image)
    draw.ellipse((width // 4, height // 4, 3 * width // 4, 3 * height // 4), fill=(200, 30, 60))
    draw.line((0, 0, width, height), fill=(0, 0, 0), width=max(1, width // 30))
    return image


def textured(width: int, height: int):
    """The picture with fine detail, as photos have (seeded noise, slightly blurred)."""
    from PIL import ImageFilter

    noise = np.random.default_rng(width * 10_000 + height).normal(0, 40, (height, width, 3))
    pixels = np.clip(np.asarray(picture(width, height), dtype=np.float64) + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels).filter(ImageFilter.GaussianBlur(0.7))


def encoded(image, fmt: str, **save) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **save)
    return out.getvalue()


def with_alpha(image):
    rgba = image.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(image.size))
    return rgba


def palette_with_transparency(image):
    palette = image.quantize(64)
    palette.info["transparency"] = 0
    return palette


# name -> (extension, bytes of a width x height picture)
PIXEL_MODES = {
    "RGB jpg": lambda w, h: ("jpg", encoded(picture(w, h), "JPEG", quality=95)),
    "textured jpg": lambda w, h: ("jpg", encoded(textured(w, h), "JPEG", quality=95)),
    "L jpg": lambda w, h: ("jpg", encoded(picture(w, h).convert("L"), "JPEG", quality=95)),
    "CMYK jpg": lambda w, h: ("jpg", encoded(picture(w, h).convert("CMYK"), "JPEG", quality=95)),
    "RGB png": lambda w, h: ("png", encoded(picture(w, h), "PNG")),
    "RGBA png": lambda w, h: ("png", encoded(with_alpha(picture(w, h)), "PNG")),
    "LA png": lambda w, h: ("png", encoded(with_alpha(picture(w, h)).convert("LA"), "PNG")),
    "P png": lambda w, h: ("png", encoded(picture(w, h).quantize(64), "PNG")),
    "P transparent png": lambda w, h: ("png", encoded(palette_with_transparency(picture(w, h)), "PNG")),
    "L png": lambda w, h: ("png", encoded(picture(w, h).convert("L"), "PNG")),
    # line art (a dithered picture is noise, which no two resamplers average alike)
    "1 png": lambda w, h: ("png", encoded(picture(w, h).convert("1", dither=Image.Dither.NONE), "PNG")),
    "RGB webp": lambda w, h: ("webp", encoded(picture(w, h), "WEBP", quality=95)),
    "RGBA webp": lambda w, h: ("webp", encoded(with_alpha(picture(w, h)), "WEBP", quality=95)),
    "P gif": lambda w, h: ("gif", encoded(picture(w, h).quantize(64), "GIF")),
}


def options(mode="border", only_if_bigger=False, skip=False, size=SIZE, encode_format="jpg", quality=None,
            **refusals) -> dict:
    """img2dataset Resizer's keyword arguments (it wants every one of these given)."""
    if quality is None:
        quality = 9 if encode_format == "png" else 95
    return {"image_size": size, "resize_mode": mode, "resize_only_if_bigger": only_if_bigger,
            "skip_reencode": skip, "encode_format": encode_format, "encode_quality": quality, **refusals}


def build_cases() -> dict:
    cases = {}

    def add(name, pixel_mode, shape, opts):
        extension, data = PIXEL_MODES[pixel_mode](*shape)
        cases[name] = {"extension": extension, "image": data, "options": opts}

    # The reported bug: border, only if bigger, 512, a 416 x 264 image.
    for skip in (False, True):
        add(f"issue border only-if-bigger 512 416x264 skip={skip}", "RGB jpg", (416, 264),
            options("border", True, skip, size=512))
    for mode in MODES:
        for only_if_bigger in (False, True):
            for skip in (False, True):
                for width, height in SHAPES:
                    add(f"{mode} only_if_bigger={only_if_bigger} skip={skip} {width}x{height}", "RGB jpg",
                        (width, height), options(mode, only_if_bigger, skip))
    for pixel_mode in PIXEL_MODES:
        for mode, only_if_bigger, skip in [("border", False, False), ("center_crop", False, False),
                                           ("keep_ratio", True, True), ("no", False, True),
                                           ("keep_ratio_largest", False, True), ("border", True, True)]:
            shapes = [(150, 90), (40, 30)] + ([(640, 480)] if pixel_mode == "textured jpg" else [])
            for width, height in shapes:
                add(f"{pixel_mode} {mode} only_if_bigger={only_if_bigger} skip={skip} {width}x{height}",
                    pixel_mode, (width, height), options(mode, only_if_bigger, skip))
    for encode_format, qualities in [("jpg", (95, 40)), ("png", (9, 0)), ("webp", (95, 40))]:
        for quality in qualities:
            for pixel_mode in ("RGB jpg", "RGB png", "RGB webp", "L png"):
                for skip in (False, True):
                    add(f"{encode_format} q{quality} from {pixel_mode} skip={skip}", pixel_mode, (150, 90),
                        options("keep_ratio", True, skip, encode_format=encode_format, quality=quality))
                add(f"{encode_format} q{quality} from {pixel_mode} border", pixel_mode, (150, 90),
                    options("border", encode_format=encode_format, quality=quality))
    # Refusals at their bounds, and which check wins when several apply.
    refusals = [({"min_image_size": 40}, [(39, 100), (40, 100), (100, 39), (40, 40)]),
                ({"max_image_area": 4000}, [(40, 100), (41, 100), (100, 41)]),
                ({"max_aspect_ratio": 2.5}, [(40, 100), (39, 100), (100, 39), (100, 40)]),
                ({"min_image_size": 20, "max_image_area": 1500, "max_aspect_ratio": 3}, [(10, 200), (30, 100),
                                                                                        (60, 60), (30, 40)])]
    for refusal, shapes in refusals:
        for width, height in shapes:
            for mode in ("border", "no"):
                add(f"refuse {refusal} {mode} {width}x{height}", "RGB jpg", (width, height),
                    options(mode, **refusal))
    broken = encoded(picture(90, 60), "JPEG")
    for name, data, extension in [("truncated jpg", broken[: len(broken) - 300], "jpg"),
                                  ("truncated png", encoded(picture(90, 60), "PNG")[:-300], "png"),
                                  ("not an image", b"<html>not found</html>", "jpg")]:
        for skip in (False, True):
            cases[f"{name} skip={skip}"] = {"extension": extension, "image": data,
                                            "options": options("no", skip=skip)}
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotated; neither img2dataset nor we turn the picture
    rotated = encoded(picture(120, 80), "JPEG", exif=exif.tobytes())
    for mode in ("keep_ratio_largest", "no"):
        cases[f"exif orientation {mode}"] = {"extension": "jpg", "image": rotated, "options": options(mode)}
    return cases


CASES = build_cases()
MEASURED: dict = {}  # case name -> mean absolute pixel difference, for the summary test


@pytest.fixture(scope="module")
def results(img2dataset_resizer):
    """Both resizers on every case: img2dataset's in one subprocess call, ours here."""
    names = list(CASES)
    theirs = img2dataset_resizer([{"image": CASES[name]["image"], "options": CASES[name]["options"]}
                                  for name in names])
    compared = {}
    for name, their in zip(names, theirs):
        case = CASES[name]
        record = {"key": "000000000", "url": "http://x/a", "status": "success",
                  "files": {case["extension"]: case["image"]}}
        [ours] = image_transform(ImageOptions(**case["options"], extract_exif=False))(record)
        compared[name] = (ours, their)
    return compared


def pixels(data: bytes):
    image = Image.open(io.BytesIO(data))
    return image, np.asarray(image.convert("RGB"), dtype=np.float64)


@pytest.mark.parametrize("name", list(CASES))
def test_resizing_gives_img2dataset_results(results, name):
    ours, their = results[name]
    case = CASES[name]
    if their["error"] is not None:
        assert ours["status"] == "failed_to_subsample", f"img2dataset refused it ({their['error']}), we did not"
        assert ours["error_message"] == their["error"]
        # img2dataset's metadata has no sizes for a refused image
        assert {"width", "height", "original_width", "original_height"}.isdisjoint(ours)
        return
    assert ours["status"] == "success", f"img2dataset kept it, we: {ours.get('error_message')}"
    sizes = ("width", "height", "original_width", "original_height")
    assert {key: ours[key] for key in sizes} == {key: their[key] for key in sizes}
    [(extension, data)] = ours["files"].items()
    assert (data == case["image"]) == (their["image"] == case["image"]), "kept the original bytes or not"
    their_image, their_pixels = pixels(their["image"])
    our_image, our_pixels = pixels(data)
    assert our_image.format == their_image.format
    assert our_image.size == their_image.size == (their["width"], their["height"])
    assert our_image.mode == their_image.mode  # grey stays grey, alpha is composited on white
    if data != case["image"]:
        assert extension == case["options"]["encode_format"]
    difference = float(np.abs(our_pixels - their_pixels).mean())
    options = case["options"]
    low_quality = options["encode_format"] != "png" and options["encode_quality"] < 90
    original = (their["original_width"], their["original_height"])
    scaled = (their["width"], their["height"])
    group = ("low quality" if low_quality else "kept bytes" if data == case["image"]
             else "downscaled" if max(scaled) < max(original) or min(scaled) < min(original)
             else "upscaled" if scaled != original and min(original) < options["image_size"] else "re-encoded only")
    MEASURED[name] = (group, difference)
    limit = MAX_MEAN_DIFF_LOW_QUALITY if low_quality else MAX_MEAN_DIFF
    assert difference <= limit, f"mean absolute pixel difference {difference:.2f}"
    if case["options"]["encode_format"] != "png" and data != case["image"]:
        # the same quality gives files of about the same size
        assert 0.5 < len(data) / len(their["image"]) < 2


def test_pixel_differences_stay_small_overall(results):
    """The measured differences, all cases together (run with -s to see them)."""
    if len(MEASURED) < len(CASES) // 2:
        pytest.skip("run with the cases above")
    print(f"\nmean absolute pixel difference (0-255) of img2dataset's output and ours, {len(MEASURED)} images:")
    for group in sorted({group for group, _ in MEASURED.values()}):
        values = np.array([value for kind, value in MEASURED.values() if kind == group])
        worst = max((item for item in MEASURED.items() if item[1][0] == group), key=lambda item: item[1][1])[0]
        print(f"  {group}: {len(values)} images, mean {values.mean():.2f}, median {np.median(values):.2f}, "
              f"max {values.max():.2f} ({worst})")
    assert np.mean([value for _, value in MEASURED.values()]) <= 1.5


def test_png_compression_level_is_0_to_9_as_in_img2dataset():
    # img2dataset's Resizer refuses it at the start; a bad level must not fail every image instead.
    with pytest.raises(UsageProblem, match="between 0 and 9"):
        ImageOptions(encode_format="png", encode_quality=95)
