"""The speech transcription model: OpenAI's Whisper (the whisper extra: openai-whisper), as
video2dataset's WhisperSubsampler.

Options: `model`, a Whisper model name (tiny, base, small, medium, large-v2, ...: downloaded
once into `download_root`, by default ~/.cache/whisper) or the path of a checkpoint file
(what whisper.load_model reads: {"dims": ..., "model_state_dict": ...}); `language` (none:
detected), `task` (transcribe or translate), `temperature` (0: greedy decoding, the same text
on every run; or a comma-separated fallback list such as whisper's own 0,0.2,0.4,0.6,0.8,1.0,
which samples again when a window's text looks wrong), `fp16` (auto: on a GPU only), `timeout`
(seconds for ffmpeg). The audio (the record's audio payload, or a video's sound track) is
decoded by ffmpeg at 16 kHz mono. The record gets video2dataset's field `whisper_transcript`:
{"text": ..., "language": ..., "segments": [{"start": s, "end": s, "text": ...}, ...]}.
A record without sound fails with `rejected`; a model that cannot be loaded ends the run
(ModelFailed), since every record would fail the same way.
"""

import functools
import inspect

from ..errors import MissingExtra, ModelFailed, UsageProblem
from .model_media import Unusable, audio_samples, media
from .models import failed, flag, number

TASKS = ("transcribe", "translate")


def whisper(records: list[dict], *, device: str = "cpu", model="large-v2", download_root=None, language=None,
            task="transcribe", temperature="0", fp16="auto", timeout="120") -> list[dict]:
    settings = _settings(model=model, download_root=download_root, language=language, task=task,
                         temperature=_hashable(temperature), fp16=fp16, timeout=timeout)
    loaded = _load(settings["model"], device, settings["download_root"])
    return [_one(record, loaded, device, settings) for record in records]


def _one(record: dict, model, device: str, settings: dict) -> dict:
    try:
        extension, payload = media(_audio_first(record))
        audio = audio_samples(payload, extension, timeout=settings["timeout"])
    except Unusable as problem:
        return failed(record, problem.kind, problem.message)
    import whisper

    options = {"language": settings["language"], "task": settings["task"], "verbose": None,
               "fp16": settings["fp16"] if settings["fp16"] is not None else device != "cpu"}
    if settings["temperature"] is not None:
        options["temperature"] = settings["temperature"]
    result = whisper.transcribe(model, audio, **options)
    record["whisper_transcript"] = {
        "text": result["text"].strip(), "language": result.get("language"),
        "segments": [{"start": round(float(part["start"]), 3), "end": round(float(part["end"]), 3),
                      "text": part["text"].strip()} for part in result["segments"]]}
    return record


def _audio_first(record: dict) -> dict:
    """A record carrying both (video2dataset's encode_formats video + audio): its audio payload."""
    from ..filetypes import AUDIO_MIMES

    files = record.get("files") or {}
    audio = [extension for extension in files if extension.rpartition(".")[2].lower() in AUDIO_MIMES]
    return {"files": {audio[0]: files[audio[0]]}} if audio else record


@functools.cache
def _load(model: str, device: str, download_root: str | None):
    whisper = _whisper()
    try:
        return whisper.load_model(model, device=device, download_root=download_root)
    except Exception as error:  # noqa: BLE001 - no such name or file, a broken checkpoint, no network
        raise ModelFailed(f"whisper model {model!r} cannot be loaded: {type(error).__name__}: {error}"[:500]) from None


@functools.cache
def _settings(**given) -> dict:
    if given["task"] not in TASKS:
        raise UsageProblem(f"model option task: one of {', '.join(TASKS)}, not {given['task']!r}")
    temperature = given["temperature"]
    if temperature is not None and temperature != "":
        parts = str(temperature).split(",") if isinstance(temperature, str) else temperature
        values = tuple(number("temperature", part, float, 0) for part in parts)
        temperature = values[0] if len(values) == 1 else values
    else:
        temperature = None
    return {"model": str(given["model"]), "download_root": given["download_root"] or None,
            "language": given["language"] or None, "task": given["task"], "temperature": temperature,
            "fp16": None if given["fp16"] in (None, "", "auto") else flag("fp16", given["fp16"]),
            "timeout": number("timeout", given["timeout"], float, 0.001)}


def _whisper():
    try:
        import whisper
    except ImportError:
        raise MissingExtra("the whisper model", "whisper", "openai-whisper") from None
    return whisper


def check(options: dict) -> None:
    """In the parent, before any work: the extra and the option values (weights load when used)."""
    _whisper()
    _settings(**{**_DEFAULTS, **{key: _hashable(value) for key, value in options.items() if key != "device"}})


def _hashable(value):
    return tuple(value) if isinstance(value, list) else value


_DEFAULTS = {name: parameter.default for name, parameter in inspect.signature(whisper).parameters.items()
             if parameter.kind is inspect.Parameter.KEYWORD_ONLY and name != "device"}
whisper.check = check
