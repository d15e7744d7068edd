"""The image transform's helpers, each alone (subsample/image.py); the transform as a whole
is in test_subsample.py."""

import io

import orjson
import pytest
from PIL import Image

from any2dataset.subsample.image import (
    AREA_TOO_LARGE,
    ASPECT_TOO_LARGE,
    TOO_SMALL,
    ImageOptions,
    ImageTransform,
    encode,
    exif_of,
    fit,
    flatten,
    has_alpha,
    measured_side,
    non_image,
    refusal,
    target_size,
)


@pytest.mark.parametrize(("mode", "side"), [("keep_ratio", 300), ("center_crop", 300), ("border", 600),
                                            ("keep_ratio_largest", 600)])
def test_the_measured_side_is_the_shorter_or_the_longer(mode, side):
    assert measured_side(mode, 600, 300) == side


def test_target_sizes_follow_img2dataset():
    assert target_size(ImageOptions(image_size=256, resize_mode="border"), 1000, 500) == (256, 128)
    assert target_size(ImageOptions(image_size=256, resize_mode="keep_ratio"), 1000, 500) == (512, 256)
    assert target_size(ImageOptions(image_size=256, resize_mode="no"), 1000, 500) is None
    only_bigger = ImageOptions(image_size=256, resize_mode="center_crop", resize_only_if_bigger=True)
    assert target_size(only_bigger, 1000, 200) is None  # the shorter side is not larger than 256
    assert target_size(ImageOptions(image_size=4, resize_mode="border"), 1000, 1) == (4, 1)  # never 0 pixels


def test_refusals_are_img2dataset_messages_from_the_header():
    assert refusal(ImageOptions(min_image_size=100), 99, 500) == TOO_SMALL
    assert refusal(ImageOptions(max_image_area=1000), 50, 50) == AREA_TOO_LARGE
    assert refusal(ImageOptions(max_aspect_ratio=2), 300, 100) == ASPECT_TOO_LARGE
    assert refusal(ImageOptions(max_pixels=100), 20, 20) == "decompression bomb: 20x20 is over 100 pixels"
    assert refusal(ImageOptions(min_image_size=100, max_aspect_ratio=2), 200, 100) is None


def test_transparency_is_composited_on_white_and_grey_stays_grey():
    clear = Image.new("RGBA", (2, 2), (0, 0, 0, 0))
    assert has_alpha(clear) and flatten(clear).getpixel((0, 0)) == (255, 255, 255)
    grey = Image.new("I;16", (2, 2), 7)
    assert not has_alpha(grey) and flatten(grey).mode == "L"
    palette = Image.new("P", (2, 2))
    assert not has_alpha(palette) and flatten(palette).mode == "RGB"
    palette.info["transparency"] = 0
    assert has_alpha(palette)


def test_border_pads_to_a_white_square_and_center_crop_cuts_the_middle():
    wide = Image.new("RGB", (8, 4), (0, 0, 0))
    bordered = fit(wide, "border", 8)
    assert bordered.size == (8, 8) and bordered.getpixel((0, 0)) == (255, 255, 255)
    assert bordered.getpixel((0, 2)) == (0, 0, 0)
    tall = Image.new("L", (4, 8))
    tall.putpixel((1, 2), 255)
    cropped = fit(tall, "center_crop", 4)
    assert cropped.size == (4, 4) and cropped.getpixel((1, 0)) == 255
    assert fit(wide, "keep_ratio", 4) is wide


def test_exif_tags_come_by_name_as_json_text():
    image = Image.new("RGB", (2, 2))
    assert exif_of(image) is None
    exif = Image.Exif()
    exif[0x010F] = "Camera maker"  # Make
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif.tobytes())
    assert orjson.loads(exif_of(Image.open(io.BytesIO(out.getvalue())))) == {"Make": "Camera maker"}


def test_encoding_uses_the_format_and_quality():
    image = Image.new("RGB", (16, 16), (10, 20, 30))
    assert encode(image, ImageOptions(encode_format="png")).startswith(b"\x89PNG")
    small, large = (len(encode(image, ImageOptions(encode_quality=q))) for q in (10, 100))
    assert small < large


def test_a_payload_that_is_not_an_image_fails_or_passes():
    record = {"url": "u", "status": "success", "files": {"html": b"<html>"}, "mime": "text/html"}
    [failed] = non_image(dict(record), ImageOptions())
    assert failed["status"] == "failed_to_subsample" and "not an image: html (text/html)" in failed["error_message"]
    assert non_image(record, ImageOptions(non_images="keep")) == [record]


def test_the_filter_follows_the_side_in_the_header():
    transform = ImageTransform(ImageOptions(image_size=256, resize_mode="border"))
    assert transform.filter_for(1000, 10) == Image.Resampling.HAMMING  # area: shrinking
    assert transform.filter_for(100, 10) == Image.Resampling.LANCZOS  # growing


def test_a_large_jpeg_is_decoded_at_a_reduced_scale_never_below_one_and_a_half_times_the_target():
    out = io.BytesIO()
    Image.new("RGB", (1600, 1200)).save(out, "JPEG")
    image = Image.open(io.BytesIO(out.getvalue()))
    ImageTransform.draft(image, (256, 192))
    assert image.size == (400, 300)  # a quarter: 1/8 would be under 384 x 288
    near = Image.open(io.BytesIO(out.getvalue()))
    ImageTransform.draft(near, (800, 600))  # over a third of the width: decoded whole
    assert near.size == (1600, 1200)
