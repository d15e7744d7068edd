"""a2d-subsample: transform payloads (images, audio, video, any file) and sample or filter records."""

from collections import Counter

import click

from ..cli import command, common_options, input_paths_argument, on_error_option, output_option
from ..streams import RecordReader, RecordWriter
from ..subsample import SubsampleOptions, subsample, subsample_lines
from ..subsample.image import (
    ENCODE_FORMATS,
    INTERPOLATIONS,
    NON_IMAGES,
    RESIZE_MODES,
    ImageOptions,
)
from ..subsample.models import ModelOptions
from ..subsample.select import Condition, Selection
from ..subsample.tools import tools_checked
from ..subsample.video import VideoOptions
from ..workers import available_cores

# Image options default to None: giving any of them turns image processing on, with
# img2dataset's defaults for the rest (256 px, border, jpg at 95).
IMAGE_OPTIONS = ["image_size", "resize_mode", "resize_only_if_bigger", "upscale_interpolation",
                 "downscale_interpolation", "encode_format", "encode_quality", "skip_reencode", "min_image_size",
                 "max_image_area", "max_aspect_ratio", "extract_exif", "max_pixels"]


@command(
    "a2d-subsample",
    "transform payloads and sample or filter records",
    "Between a2d-fetch and a2d-write: sample records (--fraction, --max), transform their payloads "
    "(images with img2dataset's resize options; every payload's type checked from its bytes) and filter "
    "them (--where). Records not kept are left out if they have no shard yet, and kept as status filtered "
    "without payload if they do, so every shard still accounts for all its rows. Image options turn "
    "image processing on (it needs the image extra: Pillow); audio and video options run ffmpeg.",
    "a2d-fetch < urls.jsonl | a2d-subsample --image-size 256 --resize-mode border | a2d-write out/",
)
@input_paths_argument
@click.option("--fraction", type=click.FloatRange(0, 1), help="Keep this fraction of records, chosen by a hash "
              "of the key (or URL before a2d-shard) and --seed: the same subset in every process and host.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of --fraction's hash.")
@click.option("--max", "max_records", type=click.IntRange(0), help="Keep at most this many records (per process).")
@click.option("--where", "conditions", multiple=True, metavar="'FIELD OP VALUE'",
              help="Keep records for which this holds, after the transforms (repeat: all must hold). OP: == != < "
                   "<= > >= (numbers or text), ~ !~ (regular expression), in, not in (comma-separated list). "
                   "Example: --where 'width >= 256' --where 'mime ~ ^image/'.")
@click.option("--image-size", type=click.IntRange(1), help="Image side in pixels. [default: 256]")
@click.option("--resize-mode", type=click.Choice(RESIZE_MODES), help="How images are resized. [default: border]")
@click.option("--resize-only-if-bigger", is_flag=True, default=None, help="Only ever make images smaller: an "
              "image whose side the mode measures (the shorter for keep_ratio and center_crop, the longer for border "
              "and keep_ratio_largest) is not larger than --image-size stays as it is, without border or crop.")
@click.option("--upscale-interpolation", type=click.Choice(INTERPOLATIONS), help="[default: lanczos]")
@click.option("--downscale-interpolation", type=click.Choice(INTERPOLATIONS), help="[default: area]")
@click.option("--encode-format", type=click.Choice(sorted(ENCODE_FORMATS)), help="Image output format. "
              "[default: jpg]")
@click.option("--encode-quality", type=click.IntRange(0, 100), help="jpg and webp quality (95), png compression "
              "level 0-9 (9).")
@click.option("--skip-reencode", is_flag=True, default=None, help="Keep an image's original bytes when it "
              "needs no resizing, is already in --encode-format and has no transparency.")
@click.option("--min-image-size", type=click.IntRange(0), help="Refuse images whose shorter side is smaller.")
@click.option("--max-image-area", type=click.FloatRange(0), help="Refuse images of more pixels.")
@click.option("--max-aspect-ratio", type=click.FloatRange(1), help="Refuse images longer than this ratio.")
@click.option("--exif/--no-exif", "extract_exif", default=None, help="Put images' EXIF tags into `exif`. "
              "[default: on]")
@click.option("--max-image-pixels", "max_pixels", type=click.IntRange(1),
              help="Decompression-bomb limit: refuse larger images before decoding them. [default: 89478485]")
@click.option("--non-images", type=click.Choice(NON_IMAGES), help="With image options, what becomes of a payload "
              "that is not an image (an HTML error page, a text reply): fail (failed_to_subsample, decode_error, "
              "as img2dataset counts them) or keep (passed through as it is). [default: fail; keep when audio or "
              "video options are given too]")
@click.option("--non-media", type=click.Choice(["keep", "fail"]), help="What becomes of a payload that is "
              "neither audio nor video (an HTML page, a text reply): keep (passed through as it is) or fail "
              "(failed_to_subsample, decode_error). [default: keep]")
@click.option("--video-size", type=click.IntRange(min=2), help="Resize videos to this many pixels (see "
              "--video-resize-mode); dimensions are rounded to even numbers. Audio and video options need ffmpeg.")
@click.option("--video-resize-mode", type=click.Choice(["scale", "crop", "pad"]), default="scale", show_default=True,
              help="scale: shorter side to --video-size; crop: then the centre square; pad: longer side to "
                   "--video-size, padded with black to a square.")
@click.option("--video-fps", type=click.FloatRange(min=0, min_open=True), help="Re-encode videos at this frame rate.")
@click.option("--audio-format", type=click.Choice(["flac", "mp3", "wav", "ogg", "opus", "m4a", "aac"]),
              help="Write audio in this format; a video becomes its audio track unless --video-size or "
                   "--video-fps keeps the video too.")
@click.option("--keep-video", is_flag=True, help="With --audio-format: keep the video payload too (as it came, "
              "unless a video option re-encodes it), as video2dataset's encode_formats {video: mp4, audio: m4a}.")
@click.option("--audio-rate", type=click.IntRange(min=1), help="Resample audio to this many Hz.")
@click.option("--audio-channels", type=click.IntRange(min=1), help="Mix audio to this many channels.")
@click.option("--probe", is_flag=True, help="Add duration, width, height and video_metadata (from ffprobe) to "
              "audio and video records.")
@click.option("--thumbnails", type=click.IntRange(min=0), default=0, show_default=True,
              help="Add N JPEG frames evenly spaced from the start: jpg, 1.jpg ... (N-1).jpg.")
@click.option("--clip-length", type=click.FloatRange(min=0, min_open=True),
              help="Cut audio and video into windows of this many seconds, one record per clip: KEY_00000, "
                   "KEY_00001 ... with source_key, clip_start, clip_end and clip_count.")
@click.option("--use-clips", is_flag=True, help="Cut audio and video at the record's clips field "
              "([[start, end], ...], from a2d-read --clip-col).")
@click.option("--detect-cuts", is_flag=True, help="Detect scene cuts in videos (ffmpeg's scene score): a cuts "
              "field with the scenes as frame ranges, {cuts_original_fps: [[0, 25], [25, 65], ...], original_fps: "
              "25.0}, as video2dataset's cut detection gives it.")
@click.option("--use-cuts", is_flag=True, help="Cut videos at the detected scenes, one record per scene as with "
              "--use-clips (implies --detect-cuts; --clip-length and --min-clip-length apply to the scenes).")
@click.option("--cut-threshold", type=click.FloatRange(0, 1, min_open=True), default=0.3, show_default=True,
              help="A frame whose scene score (0: the same picture, 1: all new) is at least this starts a scene.")
@click.option("--min-scene-length", type=click.FloatRange(min=0), default=0.5, show_default=True,
              help="Drop a cut closer than this many seconds to the previous cut kept or to the start.")
@click.option("--min-scene-frames", type=click.IntRange(min=0), default=0, show_default=True,
              help="The same in frames (video2dataset's min_scene_len); the longer of the two holds.")
@click.option("--cut-mode", type=click.Choice(["all", "longest"]), default="all", show_default=True,
              help="Keep every scene, or only the longest (video2dataset's cut_detection_mode).")
@click.option("--cut-framerate", "cut_framerates", multiple=True, type=click.FloatRange(min=0, min_open=True),
              help="Also detect cuts in the video dropped to this frame rate, as cuts_FPS in the cuts field, in "
                   "frames of the original (video2dataset's framerates). Repeatable.")
@click.option("--clip-windows", type=click.Choice(["all", "first"]), default="all", show_default=True,
              help="With --clip-length: every window of each span, or only the first (video2dataset's "
                   "max_length_strategy).")
@click.option("--min-clip-length", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Drop clips not longer than this many seconds (as video2dataset's min_length).")
@click.option("--ffmpeg-timeout", type=click.FloatRange(min=0, min_open=True), default=120.0, show_default=True,
              help="Seconds allowed for each ffmpeg or ffprobe call; slower media fail with error_kind timeout.")
@click.option("--model", "models", multiple=True, metavar="MODULE:FUNCTION|NAME",
              help="Run a model over batches of records after the transforms, before --where (repeat: in order): "
                   "a Python function `f(records, **options) -> records` as module:function, a shipped model "
                   "(optical_flow, whisper, caption: each needs its extra) or an entry point of group "
                   "any2dataset.models. A record it fails on becomes failed_to_subsample.")
@click.option("--model-option", "model_options", multiple=True, metavar="[MODEL.]KEY=VALUE",
              help="An option for the models that take KEY (MODEL.KEY: that model only), e.g. "
                   "--model-option model=/models/whisper-small.pt.")
@click.option("--batch-size", type=click.IntRange(1), default=8, show_default=True,
              help="Records given to a model at once.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="Where models that take a device run; auto: cuda when torch sees a GPU.")
@click.option("--max-bytes", type=click.IntRange(0), help="Payloads larger than this are refused (or cut, with "
              "--oversize truncate).")
@click.option("--oversize", type=click.Choice(["reject", "truncate"]), default="reject", show_default=True,
              help="What --max-bytes does to a larger payload.")
@click.option("--sniff/--no-sniff", default=True, show_default=True,
              help="Set mime and fix the extension of single payloads from their first bytes.")
@click.option("-w", "--workers", type=click.IntRange(0), default=0, show_default=True,
              help="Worker processes; 0: one per core, 1 runs in this process.")
@click.option("--ordered/--unordered", default=True, show_default=True,
              help="Keep the input order on output (the default: transforms of one kind take about as long), "
                   "or write each batch as soon as it is done.")
@on_error_option
@output_option()
@common_options
def main(inputs, on_error, output, console, **values):
    console.waiting_on_terminal(inputs)
    options = subsample_options(**values)
    # In one process the reader decodes payloads, so bad base64 is reported with its position.
    reader = RecordReader(inputs, on_error=on_error, decode=options.workers == 1)
    statuses: Counter = Counter()
    with RecordWriter(output) as out:
        if options.workers == 1:
            out.write_all(_counted(subsample(console.track(reader), options), statuses))
        else:
            out.write_lines(subsample_lines(console.track(reader.pairs()), options,
                                            lambda: (reader.source, reader.line), reader.bad, statuses))
    console.skipped(reader)
    written = sum(statuses.values())
    counts = ", ".join(f"{status or 'no status'} {n}" for status, n in statuses.most_common())
    console.info(f"{reader.count} records read, {written} written" + (f": {counts}" if written else ""))


def _counted(records, statuses: Counter):
    for record in records:
        statuses[record.get("status")] += 1
        yield record


def subsample_options(*, fraction, seed, max_records, conditions, max_bytes, oversize, sniff, workers, ordered,
                      video_size, video_resize_mode, video_fps, audio_format, audio_rate, audio_channels, probe,
                      thumbnails, clip_length, use_clips, min_clip_length, ffmpeg_timeout, non_images=None,
                      keep_video=False, clip_windows="all", non_media=None, detect_cuts=False, use_cuts=False,
                      cut_threshold=0.3, min_scene_length=0.5, min_scene_frames=0, cut_mode="all", cut_framerates=(),
                      models=(), model_options=(), batch_size=8, device="auto", **other) -> SubsampleOptions:
    """The command's parameters (as click parsed them) as SubsampleOptions, with the media tools they
    need checked now (not in a worker); the all-in-one uses it too."""
    given = {name: other[name] for name in IMAGE_OPTIONS if other.get(name) is not None}
    video = VideoOptions(video_size=video_size, video_resize_mode=video_resize_mode, video_fps=video_fps,
                         audio_format=audio_format, audio_rate=audio_rate, audio_channels=audio_channels, probe=probe,
                         thumbnails=thumbnails, clip_length=clip_length, use_clips=use_clips,
                         min_clip_length=min_clip_length, timeout=ffmpeg_timeout, keep_video=keep_video,
                         clip_windows=clip_windows, non_media=non_media or "keep", detect_cuts=detect_cuts,
                         use_cuts=use_cuts, cut_threshold=cut_threshold, min_scene_length=min_scene_length,
                         min_scene_frames=min_scene_frames, cut_mode=cut_mode, cut_framerates=tuple(cut_framerates))
    options = SubsampleOptions(
        selection=Selection(fraction=fraction, seed=seed, max_records=max_records,
                            where=tuple(Condition.parse(text) for text in conditions)),
        image=ImageOptions(**given, non_images=non_images or ("keep" if video.enabled else "fail")) if given else None,
        video=video if video.enabled else None,
        max_bytes=max_bytes, oversize=oversize, sniff=sniff,
        workers=workers or available_cores(), ordered=ordered,
        models=ModelOptions(models, model_options, batch_size, device) if models or model_options else None,
    )
    return tools_checked(options)


if __name__ == "__main__":
    main()
