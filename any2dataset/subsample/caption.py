"""The captioning model: a transformers image-to-text model (the caption extra: transformers,
torch, Pillow) captions a video's frames or an image, as video2dataset's CaptionSubsampler
captions its clips.

Options: `model`, a model name on the Hugging Face hub or the folder of one saved with
save_pretrained (its image processor and tokenizer beside it: BLIP, GIT, a
VisionEncoderDecoderModel such as ViT-GPT2...); `frames` (how many frames, evenly spread
over a video: 1); `size` (their shorter side in pixels before the image processor: 384);
`max_new_tokens` (30); `field` (where the caption goes: generated_caption; `caption` replaces
the input's, as video2dataset does); `timeout` (seconds for ffmpeg). All the frames of a
batch's records go through the model in one generate() call. The record gets `field` (the
caption of the middle frame, or of the image) and `frame_captions` (one per frame).
"""

import functools
import inspect
import io

from ..errors import MissingExtra, ModelFailed, UsageProblem
from ..filetypes import is_image
from .model_media import Unusable, media, video_frames
from .models import failed, number
from .video import media_payload


def caption(records: list[dict], *, device: str = "cpu", model="Salesforce/blip-image-captioning-base", frames="1",
            size="384", max_new_tokens="30", field="generated_caption", timeout="120") -> list[dict]:
    settings = _settings(model=model, frames=frames, size=size, max_new_tokens=max_new_tokens, field=field,
                         timeout=timeout)
    processor, tokenizer, network = _load(settings["model"], device)
    images, owners = [], []
    for index, record in enumerate(records):
        try:
            found = _images(record, settings)
        except Unusable as problem:
            failed(record, problem.kind, problem.message)
            continue
        images += found
        owners += [index] * len(found)
    if not images:
        return records
    import torch

    with torch.no_grad():
        pixels = processor(images=images, return_tensors="pt")["pixel_values"].to(device)
        tokens = network.generate(pixel_values=pixels, max_new_tokens=settings["max_new_tokens"])
    texts = [text.strip() for text in tokenizer.batch_decode(tokens, skip_special_tokens=True)]
    for index, record in enumerate(records):
        mine = [text for owner, text in zip(owners, texts) if owner == index]
        if mine:
            record[settings["field"]] = mine[len(mine) // 2]
            record["frame_captions"] = mine
    return records


def _images(record: dict, settings: dict) -> list:
    from PIL import Image

    files = record.get("files") or {}
    pictures = [extension for extension in files if is_image(extension.rpartition(".")[2])]
    if pictures and media_payload(record) is None:  # a video's thumbnails are not what is captioned
        try:
            with Image.open(io.BytesIO(files[pictures[0]])) as image:
                return [image.convert("RGB")]
        except Exception as error:  # noqa: BLE001 - whatever Pillow raises on a bad file
            raise Unusable("decode_error", f"{type(error).__name__}: {error}") from None
    extension, payload = media(record)
    decoded = video_frames(payload, extension, fps=None, size=settings["size"], count=settings["frames"],
                           timeout=settings["timeout"])
    return [Image.fromarray(frame) for frame in decoded]


@functools.cache
def _load(model: str, device: str):
    transformers = _transformers()
    kind = getattr(transformers, "AutoModelForImageTextToText", None) or transformers.AutoModelForVision2Seq
    transformers.logging.disable_progress_bar()  # our stderr says what happens, not each weight file
    try:
        processor = transformers.AutoImageProcessor.from_pretrained(model)
        tokenizer = transformers.AutoTokenizer.from_pretrained(model)
        network = kind.from_pretrained(model).to(device).eval()
    except Exception as error:  # noqa: BLE001 - no such name or folder, no network, not an image-to-text model
        raise ModelFailed(f"caption model {model!r} cannot be loaded: {type(error).__name__}: {error}"[:500]) from None
    return processor, tokenizer, network


@functools.cache
def _settings(**given) -> dict:
    if not str(given["field"]).strip() or given["field"] in ("files", "key", "status"):
        raise UsageProblem(f"model option field: {given['field']!r} cannot hold a caption")
    return {"model": str(given["model"]), "frames": number("frames", given["frames"], int, 1),
            "size": number("size", given["size"], int, 2),
            "max_new_tokens": number("max_new_tokens", given["max_new_tokens"], int, 1),
            "field": str(given["field"]), "timeout": number("timeout", given["timeout"], float, 0.001)}


def _transformers():
    for module, package in (("torch", "torch"), ("PIL", "Pillow"), ("transformers", "transformers")):
        try:
            __import__(module)
        except ImportError:
            raise MissingExtra("the caption model", "caption", package) from None
    import transformers

    return transformers


def check(options: dict) -> None:
    """In the parent, before any work: the extra and the option values (weights load when used)."""
    _transformers()
    _settings(**{**_DEFAULTS, **{key: value for key, value in options.items() if key != "device"}})


_DEFAULTS = {name: parameter.default for name, parameter in inspect.signature(caption).parameters.items()
             if parameter.kind is inspect.Parameter.KEYWORD_ONLY and name != "device"}
caption.check = check
