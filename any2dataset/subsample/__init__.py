"""a2d-subsample's library: transform payloads and sample or filter records.

A transform maps one record (payloads decoded to bytes under `files`) to a list of
records: usually one, several when a video is cut into clips, and a failure record
(status failed_to_subsample, with error_kind and error_message) when it cannot work.
Model stages (models.py) then run over batches of the transformed records, before --where,
so a filter can use what a model added.
"""

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import orjson

from .. import record as rec
from ..errors import A2DError, BadInput
from ..workers import run_tasks
from .files import file_transform
from .image import ImageOptions, image_transform
from .select import Selection

Transform = Callable[[dict], list[dict]]
BATCH_RECORDS = 8  # images take milliseconds each: small batches keep every worker busy
BATCHES_PER_WORKER = 4  # in flight, so memory is bounded by workers x 4 x 8 records


@dataclass
class SubsampleOptions:
    selection: Selection = field(default_factory=Selection)
    image: ImageOptions | None = None
    video: object | None = None  # video.VideoOptions, imported only when used (it needs ffmpeg)
    models: object | None = None  # models.ModelOptions, imported only when used
    max_bytes: int | None = None
    oversize: str = "reject"
    sniff: bool = True
    workers: int = 1
    ordered: bool = True


def build_transform(options: SubsampleOptions, *, select: bool = True) -> Transform:
    """The transforms in order: sniff the file type, then image, then audio/video, then --where
    (unless `select` is false: the model stages come before it)."""
    steps: list[Transform] = []
    if options.sniff or options.max_bytes is not None:
        steps.append(file_transform(options.max_bytes, options.oversize))
    if options.image is not None:
        steps.append(image_transform(options.image))
    if options.video is not None:
        from .video import video_transform

        steps.append(video_transform(options.video))

    def transform(record: dict) -> list[dict]:
        records = [record]
        for step in steps:
            records = [out for one in records for out in _one_record(step, one)]
        return list(options.selection.filter(records)) if select else records

    return transform


def build_batch_transform(options: SubsampleOptions) -> Callable[[list[dict]], list[dict]]:
    """Records (payloads as bytes) in, records out: the transforms, the model stages over the
    batch, then --where."""
    if options.models is None:
        transform = build_transform(options)
        return lambda records: [out for record in records for out in transform(record)]
    from .models import model_stage

    transform, models = build_transform(options, select=False), model_stage(options.models)

    def batch(records: list[dict]) -> list[dict]:
        return list(options.selection.filter(models([out for record in records for out in transform(record)])))

    return batch


def _one_record(step: Transform, record: dict) -> list[dict]:
    """A step's failure on one record (a decoder's MemoryError on a hostile header, a bug
    that one odd file triggers) is that record's failure, never the stream's end."""
    try:
        return step(record)
    except A2DError:
        raise  # a missing extra, bad options: the whole run's problem
    except Exception as error:  # noqa: BLE001 - whatever a decoder raises on one file
        message = f"{type(error).__name__}: {error}"[:500]
        return [rec.failure(record, "failed_to_subsample", "decode_error", message)]


def subsample(records: Iterable[dict], options: SubsampleOptions) -> Iterator[dict]:
    """In one process: records (payloads as base64 or bytes) in, transformed records out."""
    if options.models is None:
        transform = build_transform(options)
        for record in options.selection.sample(records):
            yield from transform(rec.decode_payloads(record))
        return
    batch, waiting = build_batch_transform(options), []
    for record in options.selection.sample(records):
        waiting.append(rec.decode_payloads(record))
        if len(waiting) >= options.models.batch_size:
            yield from batch(waiting)
            waiting = []
    if waiting:
        yield from batch(waiting)


# Worker processes: the parent reads and checks lines, samples, and sends lines in small
# batches with their input positions; a worker decodes, transforms and encodes them, and
# sends back JSONL bytes, the statuses written and the bad lines at their positions.


def _work(transform: Callable[[list[dict]], list[dict]], batch: tuple[list[bytes], list[tuple]]
          ) -> tuple[bytes, list[tuple], Counter]:
    lines, places = batch
    records, errors, statuses = [], [], Counter()
    for line, place in zip(lines, places):
        try:
            records.append(rec.decode_payloads(orjson.loads(line)))
        except BadInput as error:
            errors.append((place, error.what))
    out = []
    for result in transform(records):
        statuses[result.get("status")] += 1
        out.append(rec.dumps(result))
    return b"".join(out), errors, statuses


def subsample_lines(pairs: Iterable[tuple[bytes, dict]], options: SubsampleOptions, position: Callable[[], tuple],
                    on_bad_record: Callable[[BadInput], None], statuses: Counter | None = None) -> Iterator[bytes]:
    """Over worker processes: (line, record) pairs in, JSONL chunks out (in input order
    if options.ordered). `position()` gives the reader's (source, line) as it reads; the
    statuses of the records written are counted into `statuses`."""
    statuses = Counter() if statuses is None else statuses
    results = run_tasks(_work, _batches(pairs, options, position), options.workers, ordered=options.ordered,
                        in_flight=BATCHES_PER_WORKER, setup=build_batch_transform, setup_args=(options,),
                        name="a2d-subsample worker")
    for blob, errors, counted in results:
        statuses.update(counted)
        for (source, line), what in errors:
            on_bad_record(BadInput(what, source, line))
        yield blob


def _batches(pairs: Iterable[tuple[bytes, dict]], options: SubsampleOptions, position: Callable[[], tuple]):
    """The sampled lines in batches, with their positions: a line unchanged by sampling goes
    on as the very line read; a filtered one is written anew."""
    size = 1 if options.video is not None else BATCH_RECORDS  # a video takes seconds
    if options.models is not None:
        size = max(size, options.models.batch_size)  # a model's batch is made of one task's records
    batch, places = [], []
    for line, record in pairs:
        status = record.get("status")
        chosen = options.selection.choose(record)
        if chosen is None:
            continue
        batch.append(line if chosen.get("status") == status else rec.dumps(chosen))
        places.append(position())
        if len(batch) >= size:
            yield batch, places
            batch, places = [], []
    if batch:
        yield batch, places
