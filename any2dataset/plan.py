"""A run of the stages as plain options objects, and the same run as stage commands.

`download()` and `video2dataset()` translate their arguments into a Plan: one options object
per stage (ReadOptions, ShardOptions, FetchOptions, SubsampleOptions, WriteOptions), each
checked as it is built. The stages run from those objects; `pipe_form(plan)` gives the same
run as the stage commands' arguments,

    a2d-read ... | a2d-shard ... | a2d-fetch ... | [a2d-subsample ...] | a2d-write ...

which the pipeline of processes runs and users can print. A flag is written only where a value
differs from its command's default: the options types' defaults are the commands' defaults,
and tests/test_plan.py parses the pipe form with the commands to check that both agree.
"""

import dataclasses
import math
from dataclasses import dataclass

from .fetch.options import DEFAULT_SCHEMES, FetchOptions
from .read import ReadOptions
from .shard import ShardOptions
from .subsample import SubsampleOptions
from .write import WriteOptions

STAGES = ("read", "shard", "fetch", "subsample", "write")


@dataclass
class Plan:
    inputs: list[str]
    read: ReadOptions
    shard: ShardOptions
    fetch: FetchOptions
    fetch_workers: int
    subsample: SubsampleOptions | None
    write: WriteOptions
    output_folder: str
    # a2d-shard's --skip-done OUTPUT and --extend OUTPUT: shard.done and shard.start_shard are
    # read from the output folder by `settled`, once, when the run starts
    skip_done: bool = False
    extend: bool = False
    # How the parts run: multiprocessing, ray or pyspark (distribute.py), and img2dataset's
    # max_shard_retry: times a failed part (process, task, stage) is run again, skipping the
    # shards it finished
    distributor: str = "multiprocessing"
    part_retries: int = 0


def numbered(plan: Plan) -> Plan:
    """The plan with extend's first shard read from the output folder once, so that every
    part and every retry numbers its shards the same (extend then off)."""
    from .shard import extend_after

    if not plan.extend:
        return plan
    shard = dataclasses.replace(plan.shard, start_shard=extend_after(plan.output_folder))
    return dataclasses.replace(plan, shard=shard, extend=False)


def settled(plan: Plan, on_unreadable=None) -> Plan:
    """The plan with its output folder read: the first shard after its last one (extend) and
    its finished shards (skip_done), once for every process that runs a part of it."""
    from .shard import resume_from

    plan = numbered(plan)
    if not plan.skip_done:
        return plan
    return dataclasses.replace(plan, shard=dataclasses.replace(
        plan.shard, done=resume_from(plan.output_folder, on_unreadable)))


def pipe_form(plan: Plan) -> list[list[str]]:
    """The stage commands (the arguments after `python -m any2dataset.STAGE`) for the plan."""
    stages = [["read", *read_arguments(plan.read), *plan.inputs],
              ["shard", *shard_arguments(plan)],
              ["fetch", *fetch_arguments(plan.fetch, plan.fetch_workers)]]
    if plan.subsample is not None:
        stages.append(["subsample", *subsample_arguments(plan.subsample)])
    stages.append(["write", *write_arguments(plan.write), plan.output_folder])
    return stages


def _changed(options, defaults, flags: dict[str, str]) -> list[str]:
    """`--flag value` for each field whose value is not the default."""
    arguments = []
    for name, flag in flags.items():
        value = getattr(options, name)
        if value != getattr(defaults, name) and value is not None:
            arguments += [flag, _text(value)]
    return arguments


def _switches(options, defaults, flags: dict[str, tuple[str, str | None]]) -> list[str]:
    """The on or off spelling of each boolean field that is not at its default."""
    arguments = []
    for name, (on, off) in flags.items():
        value = getattr(options, name)
        if value != getattr(defaults, name):
            arguments.append(on if value else off)
    return arguments


def _text(value) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value)


def read_arguments(options: ReadOptions) -> list[str]:
    arguments = _changed(options, ReadOptions(), {"input_format": "--input-format", "url_col": "--url-col",
                                                  "clip_col": "--clip-col", "encoding": "--encoding",
                                                  "on_error": "--on-error", "file_field": "--file-field"})
    if options.caption_col is not None:  # "" (no captions) differs from None (a column named caption)
        arguments += ["--caption-col", options.caption_col]
    if options.save_additional_columns is not None:
        arguments += ["--save-additional-columns", ",".join(options.save_additional_columns)]
    return arguments + _switches(options, ReadOptions(), {"inline": ("--inline", None)})


def shard_arguments(plan: Plan) -> list[str]:
    options = plan.shard
    arguments = _changed(options, ShardOptions(), {"number_sample_per_shard": "--number-sample-per-shard",
                                                   "oom_shard_count": "--oom-shard-count",
                                                   "new_shard_on": "--new-shard-on"})
    if plan.extend:  # (a settled plan's start_shard: a2d-shard reads the folder itself)
        arguments += ["--extend", plan.output_folder]
    elif options.start_shard:
        arguments += ["--start-shard", str(options.start_shard)]
    if plan.skip_done:  # (a settled plan's done: a2d-shard reads the folder itself)
        arguments += ["--skip-done", plan.output_folder]
    if options.part is not None:
        arguments += ["--part", f"{options.part[0]}/{options.part[1]}"]
    return arguments


_FETCH_FLAGS = {
    "concurrency": "-j", "per_host": "--per-host", "down_after": "--host-down-after", "lookahead": "--lookahead",
    "dns_cache": "--dns-cache", "timeout": "--timeout", "deadline": "--deadline", "retries": "--retries",
    "backoff": "--backoff", "max_retry_after": "--max-retry-after", "max_size": "--max-size",
    "body_memory": "--body-memory", "max_redirects": "--max-redirects", "user_agent": "--user-agent",
    "user_agent_token": "--user-agent-token", "proxy": "--proxy", "ca_bundle": "--ca-bundle",
    "disallowed_directives": "--disallowed-header-directives", "source": "--source",
    "download_size": "--download-size", "download_audio_rate": "--download-audio-rate",
    "ytdlp_format": "--ytdlp-format", "extract_workers": "--extract-workers",
}
_FETCH_SWITCHES = {"ramp_up": ("--ramp-up", "--no-ramp-up"), "system_dns": ("--system-dns", None),
                   "insecure": ("--insecure", None), "location_trusted": ("--location-trusted", None),
                   "retry_failed": ("--retry-failed", None), "ordered": ("--ordered", "--unordered"),
                   "audio_only": ("--audio-only", None), "yt_metadata": ("--yt-metadata", None),
                   "auto_subtitles": ("--auto-subtitles", None), "all_subtitle_langs": (None, "--subtitles-first")}


def fetch_arguments(options: FetchOptions, workers: int) -> list[str]:
    defaults = FetchOptions()
    arguments = _changed(options, defaults, _FETCH_FLAGS) + _switches(options, defaults, _FETCH_SWITCHES)
    if options.hash != defaults.hash:
        arguments += ["--hash", options.hash or "none"]
    if options.verify_hash is not None:
        arguments += ["--verify-hash", ":".join(options.verify_hash)]
    for server in options.dns_servers:
        arguments += ["--dns-server", server]
    for name, value in options.headers.items():
        arguments += ["--header", f"{name}: {value}"]
    for scheme in sorted(options.allowed_schemes - DEFAULT_SCHEMES):
        arguments += ["--allow-scheme", scheme]
    for network in options.allowed_networks:
        arguments += ["--allow-address", network]
    for pinned in options.resolve:
        arguments += ["--resolve", pinned]
    for language in options.subtitle_langs:
        arguments += ["--subtitles", language]
    return arguments + ["-w", str(workers)]


def subsample_arguments(options: SubsampleOptions) -> list[str]:
    from .subsample.image import ImageOptions

    arguments = _changed(options, SubsampleOptions(), {"max_bytes": "--max-bytes", "oversize": "--oversize"})
    arguments += _switches(options, SubsampleOptions(), {"sniff": ("--sniff", "--no-sniff"),
                                                         "ordered": ("--ordered", "--unordered")})
    selection = options.selection
    if selection.fraction is not None:
        arguments += ["--fraction", str(selection.fraction), "--seed", str(selection.seed)]
    if selection.max_records is not None:
        arguments += ["--max", str(selection.max_records)]
    for condition in selection.where:
        arguments += ["--where", condition.text]
    if options.image is not None:
        image, defaults = options.image, ImageOptions()
        arguments += ["--image-size", str(image.image_size)]  # any image option turns images on
        arguments += _changed(image, defaults, {
            "resize_mode": "--resize-mode", "upscale_interpolation": "--upscale-interpolation",
            "downscale_interpolation": "--downscale-interpolation", "encode_format": "--encode-format",
            "min_image_size": "--min-image-size", "max_pixels": "--max-image-pixels", "non_images": "--non-images"})
        if image.encode_quality != ImageOptions(encode_format=image.encode_format).encode_quality:
            arguments += ["--encode-quality", str(image.encode_quality)]
        for name, flag in (("max_image_area", "--max-image-area"), ("max_aspect_ratio", "--max-aspect-ratio")):
            if math.isfinite(getattr(image, name)):
                arguments += [flag, str(getattr(image, name))]
        arguments += _switches(image, defaults, {"resize_only_if_bigger": ("--resize-only-if-bigger", None),
                                                 "skip_reencode": ("--skip-reencode", None),
                                                 "extract_exif": ("--exif", "--no-exif")})
    if options.video is not None:
        from .subsample.video import VideoOptions

        video, defaults = options.video, VideoOptions()
        arguments += _changed(video, defaults, {
            "video_size": "--video-size", "video_resize_mode": "--video-resize-mode", "video_fps": "--video-fps",
            "audio_format": "--audio-format", "audio_rate": "--audio-rate", "audio_channels": "--audio-channels",
            "thumbnails": "--thumbnails", "clip_length": "--clip-length", "min_clip_length": "--min-clip-length",
            "timeout": "--ffmpeg-timeout", "clip_windows": "--clip-windows", "non_media": "--non-media",
            "cut_threshold": "--cut-threshold", "min_scene_length": "--min-scene-length",
            "min_scene_frames": "--min-scene-frames", "cut_mode": "--cut-mode"})
        arguments += _switches(video, defaults, {"probe": ("--probe", None), "use_clips": ("--use-clips", None),
                                                 "keep_video": ("--keep-video", None),
                                                 "detect_cuts": ("--detect-cuts", None),
                                                 "use_cuts": ("--use-cuts", None)})
        for rate in video.cut_framerates:
            arguments += ["--cut-framerate", _text(rate)]
    if options.models is not None:
        arguments += [*(part for name in options.models.models for part in ("--model", name)),
                      *(part for text in options.models.options for part in ("--model-option", text)),
                      "--batch-size", str(options.models.batch_size), "--device", options.models.device]
    return arguments + ["-w", str(options.workers)]


def write_arguments(options: WriteOptions) -> list[str]:
    arguments = _changed(options, WriteOptions(), {
        "output_format": "--format", "number_sample_per_shard": "--number-sample-per-shard",
        "oom_shard_count": "--oom-shard-count", "start_shard": "--start-shard", "max_open_shards": "--max-open-shards",
        "payload_columns": "--payload-columns", "like": "--like"})
    arguments += _switches(options, WriteOptions(), {"keep_failed": ("--keep-failed", None), "index": ("--index", None),
                                                     "overwrite": ("--overwrite", None)})
    if options.columns is not None:
        arguments += ["--columns", ",".join(options.columns)]
    return arguments


def command_line(plan: Plan) -> str:
    """The pipe form as one shell line."""
    import shlex

    return " | ".join(" ".join(["a2d-" + stage[0], *map(shlex.quote, stage[1:])]) for stage in pipe_form(plan))
