"""a2d-subsample: image resizing with img2dataset's options, sampling, filters, file sniffing,
worker processes, and what happens to records that are not kept."""

import io
import sys

import orjson
import pytest

from any2dataset import record as rec
from any2dataset.errors import MissingExtra, UsageProblem
from any2dataset.subsample import SubsampleOptions, subsample
from any2dataset.subsample.image import ImageOptions
from any2dataset.subsample.select import Condition, Selection

Image = pytest.importorskip("PIL.Image")

RED, WHITE = (220, 20, 20), (255, 255, 255)


def encoded(image, fmt="JPEG", **save):
    out = io.BytesIO()
    image.save(out, fmt, **save)
    return out.getvalue()


def photo(width, height, color=RED, fmt="JPEG"):
    return encoded(Image.new("RGB", (width, height), color), fmt)


def record(data, ext="jpg", **fields):
    return {"key": fields.pop("key", "000000000"), "url": "http://x/a", "status": "success",
            "files": {ext: data}, **fields}


def run(records, **options):
    image = options.pop("image", None)
    return list(subsample([dict(r) for r in records], SubsampleOptions(image=image, **options)))


def decoded(out):
    ext = next(iter(out["files"]))
    return Image.open(io.BytesIO(out["files"][ext]))


@pytest.mark.parametrize("mode, size, expected", [
    ("border", (600, 300), (256, 256)),
    ("keep_ratio", (600, 300), (512, 256)),
    ("keep_ratio_largest", (600, 300), (256, 128)),
    ("center_crop", (600, 300), (256, 256)),
    ("no", (600, 300), (600, 300)),
    ("border", (100, 50), (256, 256)),  # upscaled, then padded
    ("keep_ratio", (100, 50), (512, 256)),
])
def test_resize_modes_give_img2dataset_dimensions(mode, size, expected):
    [out] = run([record(photo(*size))], image=ImageOptions(resize_mode=mode))
    assert out["status"] == "success"
    assert (out["width"], out["height"]) == expected == decoded(out).size
    assert (out["original_width"], out["original_height"]) == size
    assert out["mime"] == "image/jpeg" and out["size"] == len(out["files"]["jpg"])


def test_border_pads_with_white_and_keeps_the_image_centred():
    [out] = run([record(photo(600, 300))], image=ImageOptions(resize_mode="border", encode_format="png"))
    image = decoded(out).convert("RGB")
    assert image.getpixel((128, 10)) == WHITE  # the band above the 256x128 picture
    assert image.getpixel((128, 245)) == WHITE
    red = image.getpixel((128, 128))
    assert abs(red[0] - RED[0]) < 12 and red[1] < 40  # the picture itself (JPEG input: near red)


def test_center_crop_keeps_the_middle():
    left_half_blue = Image.new("RGB", (600, 300), RED)
    left_half_blue.paste((20, 20, 220), (0, 0, 150, 300))  # only the outer left quarter is blue
    [out] = run([record(encoded(left_half_blue, "PNG"), "png")],
                image=ImageOptions(resize_mode="center_crop", encode_format="png"))
    image = decoded(out).convert("RGB")
    assert image.size == (256, 256)
    assert image.getpixel((5, 128))[0] > 200  # the blue quarter was cropped away
    assert out["files"].keys() == {"png"}


def test_transparency_is_composited_on_white():
    clear = Image.new("RGBA", (300, 300), (0, 0, 0, 0))
    [out] = run([record(encoded(clear, "PNG"), "png")], image=ImageOptions(resize_mode="no", encode_format="png"))
    assert decoded(out).convert("RGB").getpixel((150, 150)) == WHITE


def test_resize_only_if_bigger_and_skip_reencode_keep_small_images_untouched():
    small = photo(200, 100)
    [out] = run([record(small)], image=ImageOptions(resize_mode="keep_ratio", resize_only_if_bigger=True,
                                                    skip_reencode=True))
    assert out["files"]["jpg"] == small and (out["width"], out["height"]) == (200, 100)
    [big] = run([record(photo(1000, 800))], image=ImageOptions(resize_mode="keep_ratio",
                                                               resize_only_if_bigger=True, skip_reencode=True))
    assert (big["width"], big["height"]) == (320, 256)


@pytest.mark.parametrize("encode_format, mime, magic", [("png", "image/png", b"\x89PNG"),
                                                       ("webp", "image/webp", b"RIFF")])
def test_encode_formats(encode_format, mime, magic):
    [out] = run([record(photo(300, 300))], image=ImageOptions(encode_format=encode_format))
    assert list(out["files"]) == [encode_format] and out["mime"] == mime
    assert out["files"][encode_format].startswith(magic)


def test_encode_quality_changes_the_jpeg():
    high, low = (run([record(photo(400, 400, (10, 200, 90)))], image=ImageOptions(encode_quality=q))[0]
                 for q in (95, 10))
    assert len(low["files"]["jpg"]) < len(high["files"]["jpg"])


@pytest.mark.parametrize("options, size, message", [
    (ImageOptions(min_image_size=300), (400, 200), "image too small"),
    (ImageOptions(max_image_area=10_000), (200, 200), "image area too large"),
    (ImageOptions(max_aspect_ratio=2), (900, 300), "aspect ratio too large"),
])
def test_refusals_are_failures_with_the_reason(options, size, message):
    [out] = run([record(photo(*size))], image=options)
    assert out["status"] == "failed_to_subsample" and out["error_kind"] == "rejected"
    assert message in out["error_message"] and "files" not in out


def test_decompression_bombs_are_refused_before_decoding():
    bomb = photo(3000, 3000, fmt="PNG")  # 9 Mpx of one colour: a few KB on the wire
    [out] = run([record(bomb, "png")], image=ImageOptions(max_pixels=4_000_000))
    assert out["status"] == "failed_to_subsample" and out["error_kind"] == "rejected"
    assert "decompression bomb" in out["error_message"]


def test_undecodable_images_fail_without_stopping_the_stream():
    outs = run([record(b"not an image at all", key="a"), record(photo(300, 300), key="b")],
               image=ImageOptions())
    assert [(o["key"], o["status"], o.get("error_kind")) for o in outs] == [
        ("a", "failed_to_subsample", "decode_error"), ("b", "success", None)]


def test_exif_is_extracted():
    image = Image.new("RGB", (300, 200), RED)
    exif = Image.Exif()
    exif[0x010F] = "CameraMaker"  # Make
    [out] = run([record(encoded(image, "JPEG", exif=exif.tobytes()))], image=ImageOptions())
    assert orjson.loads(out["exif"])["Make"] == "CameraMaker"


def test_failed_records_pass_through_and_non_images_fail_unless_kept():
    failed = {"key": "f", "url": "u", "status": "failed_to_download", "error_kind": "dns", "error_message": "x"}
    text = record(b"just text", "txt", key="t")
    html = record(b"<html><body>Not found</body></html>", "html", key="h")
    outs = run([failed, text, html], image=ImageOptions())
    assert outs[0] == failed
    # img2dataset counts a reply that is not an image as a decode error when it resizes
    assert [(o["status"], o["error_kind"]) for o in outs[1:]] == [("failed_to_subsample", "decode_error")] * 2
    assert "not an image: txt" in outs[1]["error_message"] and not outs[1].get("files")
    kept = run([dict(failed), record(b"just text", "txt", key="t")], image=ImageOptions(non_images="keep"))
    assert kept[1]["status"] == "success" and kept[1]["files"] == {"txt": b"just text"} and "width" not in kept[1]


def test_non_images_option_on_the_command(cli, tmp_path):
    from any2dataset.commands.subsample import main

    lines = b"".join(rec.dumps(r)
                     for r in [record(b"<html>gone</html>", "html", key="0"), record(photo(8, 8), key="1")])
    failing = cli(main, ["--image-size", "4", "-w", "1"], input=lines)
    keeping = cli(main, ["--image-size", "4", "-w", "1", "--non-images", "keep"], input=lines)
    statuses = [orjson.loads(line)["status"] for line in failing.stdout_bytes.splitlines()]
    assert statuses == ["failed_to_subsample", "success"], failing.stderr
    assert [orjson.loads(line)["status"] for line in keeping.stdout_bytes.splitlines()] == ["success", "success"]


def test_missing_pillow_names_the_extra(monkeypatch):
    records = [record(photo(10, 10))]
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(MissingExtra, match=r"any2dataset\[image\]"):
        run(records, image=ImageOptions())


def test_sniffing_fixes_the_extension_and_mime():
    [out] = run([record(photo(20, 20, fmt="PNG"), "jpg")])
    assert list(out["files"]) == ["png"] and out["mime"] == "image/png"


def test_max_bytes_rejects_or_truncates():
    data = b"x" * 100
    [rejected] = run([record(data, "bin")], max_bytes=10)
    assert rejected["status"] == "failed_to_subsample" and rejected["error_kind"] == "too_large"
    [cut] = run([record(data, "bin")], max_bytes=10, oversize="truncate")
    assert cut["files"]["bin"] == b"x" * 10 and cut["size"] == 10


def keys_sampled(records, **selection):
    return [r["key"] for r in Selection(**selection).sample(dict(r) for r in records)]


def test_fraction_is_deterministic_and_close_to_the_fraction():
    records = [{"key": f"{i:09d}", "url": f"http://x/{i}"} for i in range(4000)]
    first = keys_sampled(records, fraction=0.25, seed=7)
    assert first == keys_sampled(records, fraction=0.25, seed=7)
    assert first != keys_sampled(records, fraction=0.25, seed=8)
    assert 900 < len(first) < 1100
    # Split into parts as a2d-shard --part does: the union of the parts' samples is the same subset.
    parts = [keys_sampled([r for r in records if int(r["key"]) % 3 == part], fraction=0.25, seed=7)
             for part in range(3)]
    assert sorted(k for part in parts for k in part) == first


def test_records_in_a_shard_are_kept_as_filtered_rows_and_others_dropped():
    loose = [{"url": f"http://x/{i}", "status": "success", "files": {"bin": b"d"}} for i in range(200)]
    placed = [dict(r, key=f"{i:03d}", shard=0, shard_size=200) for i, r in enumerate(loose)]
    kept_loose = list(Selection(fraction=0.5, seed=1).sample(dict(r) for r in loose))
    assert 60 < len(kept_loose) < 140  # the others left the stream
    kept_placed = list(Selection(fraction=0.5, seed=1).sample(dict(r) for r in placed))
    assert len(kept_placed) == 200  # every row of the shard is still there
    filtered = [r for r in kept_placed if r["status"] == "filtered"]
    assert filtered and all("files" not in r and "--fraction 0.5" in r["error_message"] for r in filtered)


def test_max_keeps_the_first_n():
    records = [{"key": f"{i}", "url": "u", "status": "success"} for i in range(5)]
    assert keys_sampled(records, max_records=3) == ["0", "1", "2"]


@pytest.mark.parametrize("text, values, expected", [
    ("width >= 256", [100, 256, 300, None], [False, True, True, False]),
    ("mime ~ ^image/", ["image/png", "text/plain", None], [True, False, False]),
    ("mime !~ ^image/", ["image/png", "text/plain"], [False, True]),
    ("status == success", ["success", "filtered"], [True, False]),
    ("lang in en, de", ["en", "fr", "de"], [True, False, True]),
    ("lang not in en, de", ["en", "fr", None], [False, True, True]),
    ("size != 5", [5, 6, None], [False, True, True]),
    ("caption == 'a b'", ["a b", "a"], [True, False]),
])
def test_where_conditions(text, values, expected):
    condition = Condition.parse(text)
    field = condition.field
    assert [condition.holds({field: v} if v is not None else {}) for v in values] == expected


@pytest.mark.parametrize("text", ["width", "width >>= 3", "mime ~ (", "== 3"])
def test_bad_where_conditions_are_usage_errors(text):
    with pytest.raises(UsageProblem):
        Condition.parse(text)


def test_where_sees_the_transformed_record():
    records = [record(photo(600, 300), key="big", shard=0, shard_size=2),
               record(photo(100, 100), key="small", shard=0, shard_size=2)]
    outs = run(records, image=ImageOptions(resize_mode="no"),
               selection=Selection(where=(Condition.parse("width >= 256"),)))
    assert [(o["key"], o["status"]) for o in outs] == [("big", "success"), ("small", "filtered")]


def jsonl(records):
    return b"".join(rec.dumps(r) for r in records)


def test_workers_give_the_same_records_as_one_process(pipeline, tmp_path):
    records = [record(photo(100 + 37 * i, 120 + 11 * i), key=f"{i:09d}") for i in range(30)]
    records[7]["files"] = {"jpg": b"broken"}
    (tmp_path / "in.jsonl").write_bytes(jsonl(records))
    result = pipeline("a2d-subsample -w 1 --image-size 64 in.jsonl > one.jsonl && "
                      "a2d-subsample -w 2 --image-size 64 in.jsonl > two.jsonl && "
                      "a2d-subsample -w 2 --unordered --image-size 64 in.jsonl > any.jsonl")
    assert result.returncode == 0, result.stderr
    one, two, anyorder = ((tmp_path / n).read_bytes().splitlines() for n in ("one.jsonl", "two.jsonl", "any.jsonl"))
    assert one == two and len(one) == 30
    assert sorted(anyorder) == sorted(one)
    assert orjson.loads(one[7])["error_kind"] == "decode_error"


@pytest.mark.parametrize("workers", ["1", "2"])
def test_bad_base64_names_the_line_with_or_without_workers(pipeline, tmp_path, workers):
    good = jsonl([record(photo(50, 50), key=f"{i}") for i in range(20)]).splitlines(keepends=True)
    lines = good[:12] + [b'{"key": "x", "status": "success", "files": {"jpg": "%%%"}}\n'] + good[12:]
    result = pipeline(f"a2d-subsample -w {workers} --image-size 32", input=b"".join(lines))
    assert result.returncode == 3
    assert result.stderr.decode().strip().splitlines()[-1] == \
        "a2d-subsample: error: <stdin>:13: invalid base64 in files.jpg"


def test_subsample_between_fetch_and_write_keeps_every_row(pipeline, tmp_path):
    records = [record(photo(300, 200), key=f"0000{i}", shard=0, shard_size=6) for i in range(6)]
    (tmp_path / "in.jsonl").write_bytes(jsonl(records))
    result = pipeline("a2d-subsample --fraction 0.5 --seed 3 --image-size 64 in.jsonl | a2d-write out/")
    assert result.returncode == 0, result.stderr
    stats = orjson.loads((tmp_path / "out" / "00000_stats.json").read_bytes())
    assert stats["count"] == 6 and stats["successes"] + stats["filtered"] == 6 and stats["filtered"] > 0


@pytest.mark.parametrize("workers", ["1", "2"])
def test_max_holds_across_the_whole_stream_with_workers(pipeline, workers):
    lines = jsonl([{"key": f"{i}", "url": f"u{i}", "status": "success", "files": {"bin": b"x"}} for i in range(20)])
    result = pipeline(f"a2d-subsample -w {workers} --max 3", input=lines)
    assert result.returncode == 0, result.stderr
    assert [orjson.loads(line)["key"] for line in result.stdout.splitlines()] == ["0", "1", "2"]
