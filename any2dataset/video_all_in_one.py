"""`any2dataset.video2dataset()` and the `a2d-video2dataset` command: video2dataset's arguments
and config files, our stages.

video2dataset (1.3) takes a few arguments and a config (a name, a YAML file or a dict) with
four sections: `subsampling` (which subsamplers run, with their args), `reading` (timeout,
yt-dlp arguments), `storage` (shard sizes) and `distribution` (processes and threads). Both
are translated into the stage commands

    a2d-read | a2d-shard | a2d-fetch | [a2d-subsample] | a2d-write --like video2dataset

and run as the all-in-one runs img2dataset's arguments (all_in_one.py). What cannot work
here is refused with the reason, never ignored: the slurm distributor (pyspark, and ray, run
the parts as download() does), wandb. The model subsamplers (OpticalFlowSubsampler,
WhisperSubsampler, CaptionSubsampler) run on each downloaded video as a2d-subsample's model
stages (`_model_options`).
"""


from .all_in_one import (
    INPUT_FILE_FIELD,
    UNSUPPORTED,
    as_list,
    check_choice,
    check_url_list,
    list_read_options,
    remove_output,
    run_download,
)
from .distribute import DISTRIBUTORS
from .errors import UsageProblem
from .fetch.options import FetchOptions
from .fetch.ytdlp import available as ytdlp_available
from .plan import Plan, pipe_form
from .read import FORMATS as READ_FORMATS
from .shard import ShardOptions
from .subsample import SubsampleOptions
from .subsample.models import ModelOptions
from .subsample.tools import tools_checked
from .subsample.video import VideoOptions
from .workers import available_cores
from .write import FORMATS as WRITE_FORMATS
from .write import WriteOptions

# video2dataset's signature, in its order.
SIGNATURE = {
    "url_list": None, "output_folder": "dataset", "output_format": "files", "input_format": "csv",
    "encode_formats": None, "stage": "download", "url_col": "url", "caption_col": None, "clip_col": None,
    "save_additional_columns": None, "enable_wandb": False, "wandb_project": "video2dataset",
    "incremental_mode": "incremental", "max_shard_retry": 1, "tmp_dir": "/tmp", "config": "default",
}
ORDER = list(SIGNATURE)

# video2dataset's configs/default.yaml.
DEFAULT_CONFIG = {
    "subsampling": {},
    "reading": {
        "yt_args": {"download_size": 360, "download_audio_rate": 44100,
                    "yt_metadata_args": {"writesubtitles": "all", "subtitleslangs": ["en"],
                                         "writeautomaticsub": True, "get_info": True}},
        "timeout": 60,
        "sampler": None,
    },
    "storage": {"number_sample_per_shard": 1000, "oom_shard_count": 5, "captions_are_subtitles": False},
    "distribution": {"processes_count": 16, "thread_count": 32, "subjob_size": 1000,
                     "distributor": "multiprocessing"},
}
# Its named configs that run here (the sections they leave out are the default's).
RUNNABLE_CONFIGS = {
    "downsample_ml": {"subsampling": {
        "ResolutionSubsampler": {"args": {"video_size": 224, "resize_mode": "scale,crop,pad"}},
        "FrameSubsampler": {"args": {"frame_rate": 5}},
        "CutDetectionSubsampler": {"cuts_are_clips": True, "args": {
            "cut_detection_mode": "all", "framerates": None, "threshold": 11.5, "min_scene_len": 15}},
        "ClippingSubsampler": {"args": {"min_length": 4.0, "max_length": 10.0, "max_length_strategy": "all",
                                        "precision": "keyframe_adjusted"}},
        "FFProbeSubsampler": {"args": {"extract_keyframes": False}}}},
    "optical_flow": {  # video2dataset's configs/optical_flow.yaml: flow at 2 fps on frames 16 pixels high
        "subsampling": {"OpticalFlowSubsampler": {"args": {"detector": "cv2", "detector_args": None, "dtype": "fp16"}}},
        "reading": {"yt_args": {"download_size": 360, "yt_metadata_args": None},
                    "dataloader_args": {"resize_size": 16, "decoder_kwargs": {
                        "n_frames": None, "fps": 2, "num_threads": 8, "return_bytes": True}}}},
}
# Its other named configs, and why they cannot run here yet.
NAMED_CONFIGS = {
    "caption": "it captions with a video BLIP model and an LLM (llm); here CaptionSubsampler's captioner_args "
               "video_captioner names a transformers image-to-text model, which captions frames",
}
NOT_YET: dict[str, str] = {}  # subsamplers not built yet, and why: none now
SUBSAMPLER_ARGS = {
    "ClippingSubsampler": {"min_length", "max_length", "max_length_strategy", "precision"},
    "ResolutionSubsampler": {"video_size", "height", "width", "resize_mode", "encode_format"},
    "FrameSubsampler": {"frame_rate", "downsample_method", "encode_format"},
    "AudioRateSubsampler": {"sample_rate", "encode_format", "n_audio_channels"},
    "FFProbeSubsampler": {"extract_keyframes"},
    "CutDetectionSubsampler": {"cut_detection_mode", "framerates", "threshold", "min_scene_len"},
}
# video2dataset's resize_mode (filters applied in this order: scale the height to the size,
# crop the centre square, pad to the square) as a2d-subsample's --video-resize-mode.
RESIZE_MODES = {"scale": "scale", "scale,crop": "crop", "scale,crop,pad": "crop", "scale,pad": "pad", "pad": "pad"}
STAGES_NOT_HERE = {
    "subset": "re-process a dataset with the stages: a2d-read DATASET | a2d-subsample ... | a2d-write OUT",
    "optical_flow": "run the model over a dataset with the stages: a2d-read DATASET | a2d-subsample --model "
                    "optical_flow | a2d-write OUT (or give OpticalFlowSubsampler in the download's config)",
    "caption": "run the model over a dataset with the stages: a2d-read DATASET | a2d-subsample --model caption "
               "--model-option model=NAME_OR_PATH | a2d-write OUT (or give CaptionSubsampler in the config)",
    "whisper": "run the model over a dataset with the stages: a2d-read DATASET | a2d-subsample --model whisper "
               "--model-option model=NAME_OR_PATH | a2d-write OUT (or give WhisperSubsampler in the config)",
}


def _loaded_config(config) -> dict:
    """video2dataset's config argument (a name, a YAML file's path, or a dict) as a dict, its
    sections merged over the default config's."""
    if isinstance(config, str):
        if config == "default":
            config = {}
        elif config in RUNNABLE_CONFIGS:
            config = RUNNABLE_CONFIGS[config]
        elif config in NAMED_CONFIGS:
            raise UsageProblem(f"config {config!r} is not supported: {NAMED_CONFIGS[config]}")
        else:
            config = _read_yaml(config)
    if not isinstance(config, dict):
        raise UsageProblem(f"config must be a name, a YAML file or a dict, not {type(config).__name__}")
    unknown = set(config) - set(DEFAULT_CONFIG)
    if unknown:
        raise UsageProblem(f"config: unknown section(s) {', '.join(sorted(unknown))} "
                           f"(video2dataset's are {', '.join(DEFAULT_CONFIG)})")
    merged = {}
    for section, defaults in DEFAULT_CONFIG.items():
        given = config.get(section) or {}
        if not isinstance(given, dict):
            raise UsageProblem(f"config: {section} must be a mapping")
        merged[section] = given if section == "subsampling" else {**defaults, **given}
    return merged


def _read_yaml(path: str) -> dict:
    try:
        import yaml
    except ImportError:
        raise UsageProblem("a YAML config file needs PyYAML: pip install 'any2dataset[video2dataset]'") from None
    import fsspec

    try:
        with fsspec.open(path, "r", encoding="utf-8") as file:
            loaded = yaml.safe_load(file)
    except FileNotFoundError:
        raise UsageProblem(f"config {path!r}: no such file (nor one of the named configs default, "
                           f"{', '.join([*RUNNABLE_CONFIGS, *NAMED_CONFIGS])})") from None
    except yaml.YAMLError as error:
        raise UsageProblem(f"config {path}: not valid YAML: {str(error).splitlines()[0]}") from None
    if not isinstance(loaded, dict):
        raise UsageProblem(f"config {path}: expected a mapping with subsampling, reading, storage, distribution")
    return loaded


REQUIRED_ARGS = {"FrameSubsampler": {"frame_rate"}, "AudioRateSubsampler": {"sample_rate"}}


def setting(where: str, value, kind: type = int, least: float = 1):
    """A config value as `kind` (int or float), at least `least`; else one clear usage error
    naming the setting."""
    try:
        number = kind(value)
    except (TypeError, ValueError):
        number = None
    if number is None or isinstance(value, bool) or number < least:
        what = "an integer" if kind is int else "a number"
        raise UsageProblem(f"config: {where} must be {what} of at least {least:g}, not {value!r}")
    return number


def _subsampler_args(subsampling: dict) -> dict[str, dict]:
    """Each configured subsampler's args, checked against what runs here."""
    chosen = {}
    for name, spec in subsampling.items():
        if name in NOT_YET:
            raise UsageProblem(f"config: subsampling.{name} is not supported: {NOT_YET[name]}")
        if name in MODEL_SUBSAMPLER_ARGS:
            chosen[name] = _model_args(name, spec)
            continue
        if name not in SUBSAMPLER_ARGS:
            raise UsageProblem(f"config: unknown subsampler {name} (supported: "
                               f"{', '.join([*SUBSAMPLER_ARGS, *MODEL_SUBSAMPLER_ARGS])})")
        args = (spec or {}).get("args") if isinstance(spec or {}, dict) else 0
        if not isinstance(args if args is not None else {}, dict):
            raise UsageProblem(f"config: subsampling.{name} must be a mapping with args: {{...}}")
        args = args or {}
        unknown = set(args) - SUBSAMPLER_ARGS[name]
        if unknown:
            raise UsageProblem(f"config: subsampling.{name}.args: unknown {', '.join(sorted(unknown))}")
        missing = REQUIRED_ARGS.get(name, set()) - set(args)
        if missing:
            raise UsageProblem(f"config: subsampling.{name}.args needs {', '.join(sorted(missing))}")
        chosen[name] = args
    return chosen


def _check(arguments: dict, config: dict) -> None:
    _check_arguments(arguments)
    _check_config(config)


def _check_arguments(arguments: dict) -> None:
    """Refuse what video2dataset accepts and we do not do (yet), before any work."""
    unknown = set(arguments) - set(SIGNATURE)
    if unknown:
        raise UsageProblem(f"unknown argument(s): {', '.join(sorted(unknown))}")
    if not arguments.get("url_list"):
        raise UsageProblem("url_list is required")
    stage = arguments.get("stage", "download")
    if stage in STAGES_NOT_HERE:
        raise UsageProblem(f"stage={stage!r} is not supported: {STAGES_NOT_HERE[stage]}")
    if stage != "download":
        raise UsageProblem(f"unknown stage {stage!r}")
    if arguments.get("enable_wandb"):
        raise UsageProblem(f"enable_wandb is not supported: {UNSUPPORTED['enable_wandb']}")
    retries = arguments.get("max_shard_retry", 1)
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        raise UsageProblem(f"max_shard_retry must be an integer of at least 0, not {retries!r}")
    if arguments.get("incremental_mode", "incremental") not in ("incremental", "overwrite"):
        raise UsageProblem("incremental_mode must be incremental or overwrite")
    if arguments.get("input_format") == "webdataset":
        raise UsageProblem(f"input_format='webdataset' is not supported: {STAGES_NOT_HERE['subset']}")


def _check_config(config: dict) -> None:
    """Refuse config settings we do not know or do not do (yet)."""
    storage, distribution, reading = config["storage"], config["distribution"], config["reading"]
    if storage["captions_are_subtitles"]:
        raise UsageProblem("config: storage.captions_are_subtitles is not supported: clips by subtitles "
                           "are not built yet (subtitles come in yt_meta_dict and LANG.vtt)")
    if distribution["distributor"] == "slurm":
        raise UsageProblem("config: distribution.distributor='slurm' is not supported: submit the parts as a "
                           "Slurm job array (examples/slurm_array.sbatch, a2d-video2dataset --pipe-form)")
    check_choice("config: distribution.distributor", distribution["distributor"], list(DISTRIBUTORS))
    if reading["sampler"] is not None:
        raise UsageProblem("config: reading.sampler is not supported: take part of the shards with "
                           "a2d-shard --part I/N")
    unknown = set(reading) - set(DEFAULT_CONFIG["reading"]) - {"dataloader_args"}  # the models' (_model_options)
    unknown |= {f"storage.{k}" for k in set(storage) - set(DEFAULT_CONFIG["storage"])}
    unknown |= {f"distribution.{k}" for k in set(distribution) - set(DEFAULT_CONFIG["distribution"])}
    if unknown:
        raise UsageProblem(f"config: unknown setting(s) {', '.join(sorted(unknown))}")


def _encode_formats(value) -> dict:
    if value is None:
        return {"video": "mp4"}
    if isinstance(value, str):
        import ast

        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            raise UsageProblem(f"encode_formats must be a dict such as {{'video': 'mp4', 'audio': 'm4a'}}, "
                               f"not {value!r}") from None
    if not isinstance(value, dict) or not value or set(value) - {"video", "audio"}:
        raise UsageProblem(f"encode_formats must map video and/or audio to an extension, not {value!r}")
    if value.get("video", "mp4") != "mp4":
        raise UsageProblem(f"encode_formats video={value['video']!r} is not supported: videos are written as "
                           f"downloaded, or as mp4 when re-encoded")
    return value


def video2dataset_plan(**arguments) -> Plan:
    """video2dataset's arguments and config as the stages' options, checked."""
    a = {**SIGNATURE, **arguments}
    config = _loaded_config(a["config"])
    _check(arguments, config)
    subsamplers = _subsampler_args(config["subsampling"])
    encode_formats = _encode_formats(a["encode_formats"])
    storage, distribution, reading = config["storage"], config["distribution"], config["reading"]
    out = a["output_folder"]
    input_format = str(a["input_format"]).split(".")[0]
    check_choice("input_format", input_format, READ_FORMATS)
    check_choice("output_format", a["output_format"], list(WRITE_FORMATS))
    columns = as_list(a["save_additional_columns"]) or []
    clips = bool(a["clip_col"] and input_format != "txt")

    read = list_read_options(input_format, a["url_col"], a["caption_col"], a["clip_col"], columns)
    sizes = {name: setting(f"storage.{name}", storage[name]) for name in ("number_sample_per_shard", "oom_shard_count")}
    shard = ShardOptions(**sizes, new_shard_on=INPUT_FILE_FIELD)
    processes = setting("distribution.processes_count", distribution["processes_count"])
    workers = min(processes, available_cores())
    fetch = FetchOptions(concurrency=setting("distribution.thread_count", distribution["thread_count"]) * processes,
                         timeout=setting("reading.timeout", reading["timeout"], float, 0.001), hash=None,
                         **yt_settings(reading["yt_args"], encode_formats))
    # A reply that is not audio or video (an error page, a page no yt-dlp extractor knows)
    # fails rather than being saved as a sample.
    cuts = _cut_detection_settings(config["subsampling"], subsamplers)
    video = VideoOptions(non_media="fail", **_video_settings(subsamplers, encode_formats, clips, cuts))
    models, model_fields = _model_options(subsamplers, reading)
    subsample = tools_checked(SubsampleOptions(video=video, workers=workers, models=models))

    presented = list(columns) if input_format != "txt" else []
    if clips:
        presented.append("clips")
    if a["caption_col"] and input_format != "txt":
        presented.append("caption")
    if cuts:
        presented.append("cuts")
    presented += [name for name in model_fields if name not in presented]
    presented += ["url", "key", "status", "error_message"]
    # video2dataset writes the .json (and .txt) of failed samples too
    write = WriteOptions(output_format=a["output_format"], **sizes, like="video2dataset", keep_failed=True,
                         columns=presented)
    return Plan(inputs=[str(a["url_list"])], read=read, shard=shard, fetch=fetch, fetch_workers=workers,
                subsample=subsample, write=write, output_folder=out, skip_done=a["incremental_mode"] == "incremental",
                part_retries=a["max_shard_retry"], distributor=distribution["distributor"])


# The model subsamplers: video2dataset's args for each, and how they become a2d-subsample's
# model stages (its optical_flow config is in RUNNABLE_CONFIGS).
MODEL_SUBSAMPLER_ARGS = {
    "OpticalFlowSubsampler": {"detector", "detector_args", "args", "fps", "downsample_size", "dtype"},
    "WhisperSubsampler": {"model_name", "batch_size", "compute_type", "download_root"},
    "CaptionSubsampler": {"captioner_args"},
}
MODEL_FIELDS = {
    "OpticalFlowSubsampler": ["mean_optical_flow_magnitude", "mean_optical_flow_magnitude_per_frame",
                              "optical_flow_fps", "optical_flow_downsample_size", "optical_flow_dtype"],
    "WhisperSubsampler": ["whisper_transcript"],
    "CaptionSubsampler": ["caption"],
}
WHISPER_COMPUTE_TYPES = {"float16": "true", "float32": "false", "default": "auto"}


def _model_args(name: str, spec) -> dict:
    args = (spec or {}).get("args") if isinstance(spec or {}, dict) else 0
    if not isinstance(args if args is not None else {}, dict):
        raise UsageProblem(f"config: subsampling.{name} must be a mapping with args: {{...}}")
    unknown = set(args or {}) - MODEL_SUBSAMPLER_ARGS[name]
    if unknown:
        raise UsageProblem(f"config: subsampling.{name}.args: unknown {', '.join(sorted(unknown))}")
    return args or {}


def _model_options(subsamplers: dict, reading: dict) -> tuple[ModelOptions | None, list[str]]:
    """The model subsamplers' args as a2d-subsample's model stages (in video2dataset's worker
    order: optical flow, transcription, captions), and the fields they add to the metadata."""
    models, options, batch_size = [], [], ModelOptions().batch_size
    loader = reading.get("dataloader_args") or {}
    flow = subsamplers.get("OpticalFlowSubsampler")
    if flow is not None:
        where = "subsampling.OpticalFlowSubsampler.args"
        if flow.get("detector", "cv2") != "cv2":
            raise UsageProblem(f"config: {where}.detector {flow['detector']!r} is not supported: optical flow is "
                               f"OpenCV's Farneback here (detector cv2); RAFT's code and weights are not shipped")
        fps = flow.get("fps", -1)
        fps = (loader.get("decoder_kwargs") or {}).get("fps", 2) if fps in (None, -1) else fps
        size = flow.get("downsample_size") or loader.get("resize_size", 16)
        detector_args = flow.get("detector_args", flow.get("args"))
        models.append("optical_flow")
        options += [f"optical_flow.fps={setting(f'{where}.fps', fps, float, 0.001)}",
                    f"optical_flow.downsample_size={setting('reading.dataloader_args.resize_size', size, int, 2)}",
                    f"optical_flow.dtype={flow.get('dtype', 'fp16')}", "optical_flow.save_flow=true"]
        if detector_args:
            options.append("optical_flow.detector_args=" + ",".join(str(value) for value in detector_args))
    whisper = subsamplers.get("WhisperSubsampler")
    if whisper is not None:
        where = "subsampling.WhisperSubsampler.args"
        compute = str(whisper.get("compute_type", "default"))
        if compute not in WHISPER_COMPUTE_TYPES:
            raise UsageProblem(f"config: {where}.compute_type {compute!r} is not supported: openai-whisper computes "
                               f"in float16 or float32")
        models.append("whisper")
        options += [f"whisper.model={whisper.get('model_name', 'large-v2')}",
                    f"whisper.fp16={WHISPER_COMPUTE_TYPES[compute]}"]
        if whisper.get("download_root"):
            options.append(f"whisper.download_root={whisper['download_root']}")
        batch_size = setting(f"{where}.batch_size", whisper.get("batch_size", batch_size))
    caption = subsamplers.get("CaptionSubsampler")
    if caption is not None:
        where = "subsampling.CaptionSubsampler.args.captioner_args"
        captioner = caption.get("captioner_args") or {}
        if not isinstance(captioner, dict) or not captioner.get("video_captioner"):
            raise UsageProblem(f"config: {where} needs video_captioner: a transformers image-to-text model's name "
                               f"or folder")
        for name in sorted(set(captioner) - {"video_captioner"}):
            if captioner[name] is not None:
                raise UsageProblem(f"config: {where}.{name} is not supported: frames are captioned by the "
                                   f"image-to-text model alone")
        models.append("caption")
        options += [f"caption.model={captioner['video_captioner']}", "caption.field=caption"]
    fields = [field for name in MODEL_FIELDS if name in subsamplers for field in MODEL_FIELDS[name]]
    if not models:
        return None, []
    return ModelOptions(tuple(models), tuple(options), batch_size), fields


YT_ARGS = {"download_size", "download_audio_rate", "yt_metadata_args"}
YT_METADATA_ARGS = {"writesubtitles", "writealllangs", "subtitleslangs", "writeautomaticsub", "get_info"}


def yt_settings(yt_args, encode_formats: dict) -> dict:
    """reading.yt_args (download_size, download_audio_rate, yt_metadata_args) as FetchOptions'
    page settings. video2dataset sends every URL whose name is not a media file through yt-dlp
    (a2d-fetch --source pages); without yt-dlp installed they are fetched directly (--source
    auto), as before, so a list of direct links needs no extra."""
    if not isinstance(yt_args or {}, dict):
        raise UsageProblem("config: reading.yt_args must be a mapping")
    yt_args = yt_args or {}
    unknown = set(yt_args) - YT_ARGS
    if unknown:
        raise UsageProblem(f"config: reading.yt_args: unknown {', '.join(sorted(unknown))}")
    settings = {"download_size": setting("reading.yt_args.download_size", yt_args.get("download_size", 360), int, 0),
                "download_audio_rate": setting("reading.yt_args.download_audio_rate",
                                               yt_args.get("download_audio_rate", 44100), int, 0),
                "audio_only": "video" not in encode_formats,
                "source": "pages" if ytdlp_available() else "streams"}
    meta = yt_args.get("yt_metadata_args") or {}
    if not isinstance(meta, dict):
        raise UsageProblem("config: reading.yt_args.yt_metadata_args must be a mapping")
    unknown = set(meta) - YT_METADATA_ARGS
    if unknown:
        raise UsageProblem(f"config: reading.yt_args.yt_metadata_args: unknown {', '.join(sorted(unknown))}")
    settings["yt_metadata"] = bool(meta.get("get_info"))
    if meta.get("writesubtitles"):
        languages = meta.get("subtitleslangs") or ["en"]
        if isinstance(languages, str):
            languages = [languages]
        settings["subtitle_langs"] = tuple(str(language) for language in languages)
        # video2dataset: 'first' takes the first language found, 'all' (or True) every one;
        # its writealllangs says the same in its code.
        settings["all_subtitle_langs"] = meta["writesubtitles"] != "first" or bool(meta.get("writealllangs"))
        settings["auto_subtitles"] = bool(meta.get("writeautomaticsub"))
    return settings


def stage_commands(**arguments) -> list[list[str]]:
    """The stage commands (argument lists after `python -m any2dataset.STAGE`) for
    video2dataset's arguments."""
    return pipe_form(video2dataset_plan(**arguments))


def _video_settings(subsamplers: dict, encode_formats: dict, clips: bool, cuts: dict) -> dict:
    """VideoOptions' settings for the configured subsamplers (`cuts`: those of cut detection)."""
    settings = {}
    if clips or cuts.get("use_cuts"):
        settings.update(_clipping_settings(subsamplers.get("ClippingSubsampler", {})))
    if cuts.get("use_cuts"):
        settings["use_clips"] = False  # the scenes replace the clip column's spans, as in video2dataset
    settings.update(cuts)
    resolution = subsamplers.get("ResolutionSubsampler")
    if resolution is not None:
        settings.update(_resolution_settings(resolution))
    frames = subsamplers.get("FrameSubsampler")
    if frames is not None:
        if frames.get("downsample_method", "fps") != "fps":
            raise UsageProblem(f"config: FrameSubsampler downsample_method {frames['downsample_method']!r} is "
                               f"not supported (fps is; a2d-subsample --thumbnails N takes frames as jpg)")
        settings["video_fps"] = setting("subsampling.FrameSubsampler.args.frame_rate", frames["frame_rate"], float,
                                        0.001)
    settings.update(_audio_settings(subsamplers.get("AudioRateSubsampler"), encode_formats))
    if "FFProbeSubsampler" in subsamplers:
        settings["probe"] = True
    return settings


def _clipping_settings(clipping: dict) -> dict:
    """ClippingSubsampler's args as VideoOptions' settings (clips come from the clip column)."""
    where = "subsampling.ClippingSubsampler.args"
    settings = {"use_clips": True, "min_clip_length": setting(f"{where}.min_length", clipping.get("min_length", 0.0),
                                                              float, 0)}
    max_length = setting(f"{where}.max_length", clipping.get("max_length", 999999.0), float, 0.01)
    if max_length < 999999.0:
        settings["clip_length"] = max_length
        strategy = clipping.get("max_length_strategy", "all")
        if strategy not in ("all", "first"):
            raise UsageProblem("config: ClippingSubsampler max_length_strategy must be all or first")
        settings["clip_windows"] = strategy
    if clipping.get("precision", "low") not in ("low", "keyframe_adjusted", "exact"):
        raise UsageProblem("config: ClippingSubsampler precision must be low, keyframe_adjusted or exact")
    # Every precision is cut exactly here (clips are re-encoded): see the README.
    return settings


def _cut_detection_settings(subsampling: dict, subsamplers: dict) -> dict:
    """CutDetectionSubsampler (its args, checked by _subsampler_args, and cuts_are_clips) as
    VideoOptions' settings. Its threshold is PySceneDetect's ContentDetector's (a mean change of
    hue, saturation and value, 0-255); ours is ffmpeg's scene score (a mean pixel change,
    0-255, over 100): threshold / 100 puts the two on one scale, so the same setting finds the
    hard cuts both see, not always the same soft ones."""
    if "CutDetectionSubsampler" not in subsampling:
        return {}
    spec = subsampling["CutDetectionSubsampler"] or {}
    where = "subsampling.CutDetectionSubsampler"
    unknown = set(spec) - {"args", "cuts_are_clips"}
    if unknown:
        raise UsageProblem(f"config: {where}: unknown {', '.join(sorted(unknown))} (it takes args and cuts_are_clips)")
    args = subsamplers["CutDetectionSubsampler"]
    mode = args.get("cut_detection_mode", "all")
    if mode not in ("all", "longest"):
        raise UsageProblem(f"config: {where}.args.cut_detection_mode must be all or longest, not {mode!r}")
    threshold = setting(f"{where}.args.threshold", args.get("threshold", 27), float, 0.001)
    if threshold > 100:
        raise UsageProblem(f"config: {where}.args.threshold {threshold:g} is over 100: ffmpeg's scene score, "
                           f"which detects cuts here, cannot reach it (thresholds up to 100 are supported)")
    framerates = args.get("framerates")
    if framerates is not None and not isinstance(framerates, (list, tuple)):
        raise UsageProblem(f"config: {where}.args.framerates must be null or a list of frame rates")
    rates = tuple(setting(f"{where}.args.framerates", rate, float, 0.001) for rate in framerates or ())
    return {"detect_cuts": True, "use_cuts": bool(spec.get("cuts_are_clips", False)), "cut_mode": mode,
            "cut_threshold": threshold / 100, "min_scene_length": 0.0, "cut_framerates": rates,
            "min_scene_frames": setting(f"{where}.args.min_scene_len", args.get("min_scene_len", 15), int, 0)}


def _resolution_settings(resolution: dict) -> dict:
    """ResolutionSubsampler's args as VideoOptions' settings: a square, or the shorter side."""
    where = "subsampling.ResolutionSubsampler.args"
    size, height, width = (setting(f"{where}.{name}", resolution.get(name, -1), int, -1)
                           for name in ("video_size", "height", "width"))
    if size <= 0 and height > 0 and height == width:
        size = height
    if size <= 0:
        raise UsageProblem("config: ResolutionSubsampler needs video_size (or equal height and width): "
                           "videos are resized to squares or by their shorter side here")
    mode = str(resolution.get("resize_mode", "")).replace(" ", "")
    if mode not in RESIZE_MODES:
        raise UsageProblem(f"config: ResolutionSubsampler resize_mode {mode!r} is not supported "
                           f"(supported: {', '.join(RESIZE_MODES)})")
    return {"video_size": size, "video_resize_mode": RESIZE_MODES[mode]}


def _audio_settings(audio: dict | None, encode_formats: dict) -> dict:
    """AudioRateSubsampler's args and encode_formats' audio as VideoOptions' settings."""
    settings = {}
    audio_format = encode_formats.get("audio")
    if audio is not None:
        audio_format = audio.get("encode_format") or audio_format
        where = "subsampling.AudioRateSubsampler.args"
        settings["audio_rate"] = setting(f"{where}.sample_rate", audio["sample_rate"])
        if audio.get("n_audio_channels"):
            settings["audio_channels"] = setting(f"{where}.n_audio_channels", audio["n_audio_channels"])
    if audio_format:
        settings.update(audio_format=audio_format, keep_video="video" in encode_formats)
    return settings


def video2dataset(*positional, progress: bool = False, quiet: bool = False, **arguments) -> dict:
    """Download `url_list` into `output_folder` with video2dataset's arguments (by name, or by
    position in its order); returns the a2d-stats report of the output folder. Raises
    A2DError subclasses on failure, before any work when an argument is wrong."""
    if len(positional) > len(ORDER):
        raise UsageProblem(f"video2dataset() takes at most {len(ORDER)} positional arguments")
    given = dict(zip(ORDER, positional))
    twice = sorted(set(given) & set(arguments))
    if twice:
        raise UsageProblem(f"video2dataset() got {', '.join(twice)} both by position and by name")
    arguments = {**given, **arguments}
    plan = video2dataset_plan(**arguments)
    check_url_list(plan)
    if arguments.get("incremental_mode") == "overwrite":
        remove_output(plan.output_folder)
    environment = {"TMPDIR": str(arguments["tmp_dir"])} if arguments.get("tmp_dir") else {}
    return run_download(plan, plan.fetch_workers, progress=progress, quiet=quiet, environment=environment)
