"""Train straight from a URL list or an a2d dataset: an iterable (and indexable) dataset.

    from any2dataset.loader import Dataset

    dataset = Dataset("urls.parquet", caption_col="caption", cache_dir="/tmp/cache", cache_budget="20GB",
                      shuffle=True, seed=0)
    for epoch in range(3):
        dataset.set_epoch(epoch)
        for sample in dataset:      # {"__key__", "__url__", "jpg": bytes, "txt": str, "json": {...}}
            ...

The index (anything a2d-read reads: lists, compressed, globs, folders, fsspec URLs, and
datasets a2d-write produced) is read lazily (index.py): a list is spilled to chunk files by a
background thread while the first epoch already runs, a dataset's shards are read as they are.
Each epoch orders it by (seed, epoch) or keeps the list's order (shuffle=False), and deals it
out between ranks (torch.distributed, or given) and a DataLoader's workers (torch's worker
info, or given) so every sample is seen once per epoch across them all; `even` trims ("drop")
or fills up ("pad") so every rank has as many samples, as DDP needs (order.py).

A list's samples are downloaded by a2d-fetch's engine in this process (its limits, guards,
retries and error kinds), `read_ahead` at a time, and yielded as they arrive (one slow URL
holds none back), or in the epoch's order with `ordered=True` (a reproducible sequence). A
dataset's samples come in the epoch's order. `state_dict()` (the epoch, the slots done in
order and the few done beyond them) resumes it exactly: no sample repeated or skipped. A
failed download or a transform that raises skips the sample and is counted (`counts`), never
a crash or a hang. With a cache (cache.py) downloads are kept on disk under a byte budget and
served from there on the next epoch or restart.
"""

import itertools
from collections import Counter
from collections.abc import Callable, Iterator

import orjson

from .. import record as rec
from ..errors import UsageProblem
from ..fetch.options import FetchOptions
from ..read import ReadOptions
from .index import CHUNK_ROWS, Index
from .order import Part, list_epoch, shard_epoch

EVEN_MODES = (None, "drop", "pad")


class Dataset:
    def __init__(self, source: str | list[str], *, input_format: str | None = None, url_col: str = "url",
                 caption_col: str | None = None, save_additional_columns: list[str] | None = None,
                 transform: Callable[[dict], dict] | None = None, shuffle: bool = True, seed: int = 0,
                 rank: int | None = None, world_size: int | None = None, even: str | None = None,
                 cache_dir: str | None = None, cache_budget: int | str | None = None, read_ahead: int = 64,
                 ordered: bool = False, fetch_options: FetchOptions | None = None, index_dir: str | None = None,
                 chunk_rows: int = CHUNK_ROWS, shuffle_window: int = 4, shuffle_buffer: int = 1000):
        if even not in EVEN_MODES:
            raise UsageProblem(f"even must be one of {EVEN_MODES}, not {even!r}")
        for name, value in (("read_ahead", read_ahead), ("shuffle_window", shuffle_window),
                            ("shuffle_buffer", shuffle_buffer)):
            if value < 1:
                raise UsageProblem(f"{name} must be at least 1")
        self.sources = [source] if isinstance(source, str) else list(source)
        self.read_options = ReadOptions(input_format=input_format, url_col=url_col, caption_col=caption_col,
                                        save_additional_columns=save_additional_columns)
        self.index = Index(self.sources, self.read_options, index_dir, chunk_rows)
        self.transform = transform
        self.shuffle, self.seed, self.even = shuffle, seed, even
        self.shuffle_window, self.shuffle_buffer = shuffle_window, shuffle_buffer
        self.rank, self.world_size = rank, world_size
        self.worker: tuple[int, int] | None = None  # (id, count): set by for_worker or torch's worker info
        self.read_ahead = read_ahead
        self.ordered = ordered  # yield in the epoch's order, or as downloads finish (one slow URL holds none back)
        self.fetch_options = fetch_options or FetchOptions(retries=1)
        self.cache_dir, self.cache_budget = cache_dir, cache_budget
        self._cache = None
        self.epoch = 0
        # This epoch's share: every slot before _done is processed (yielded or skipped), and
        # _ahead the slots after it processed already (downloads finish out of order)
        self._done = 0
        self._ahead: set[int] = set()
        self.counts: Counter = Counter()  # success, failed_to_download, transform_error, ...

    def __len__(self) -> int:
        """Rows of the index (waits for a list to be read whole; counts a dataset's shards once)."""
        return len(self.index)

    # --- order and slicing -------------------------------------------------------------

    def set_epoch(self, epoch: int) -> None:
        """The epoch whose order the next iteration follows (a new epoch starts at its beginning)."""
        if epoch != self.epoch:
            self.epoch, self._done, self._ahead = epoch, 0, set()

    def for_worker(self, worker: int, workers: int) -> "Dataset":
        """This dataset as seen by one of `workers` loader workers (torch's DataLoader sets it
        itself, through TorchDataset)."""
        if not 0 <= worker < workers:
            raise UsageProblem(f"worker {worker} of {workers}: need 0 <= worker < workers")
        self.worker = (worker, workers)
        return self

    def part(self) -> Part:
        """This rank's and worker's share."""
        if self.world_size is not None:
            rank, world = self.rank or 0, self.world_size
        else:
            rank, world = _distributed()
        if not 0 <= rank < world:
            raise UsageProblem(f"rank {rank} of world size {world}: need 0 <= rank < world size")
        worker, workers = self.worker or (0, 1)
        return Part(rank, world, worker, workers)

    def _sequence(self, epoch: int, part: Part, done: int = 0) -> Iterator[tuple[int, int | None, object]]:
        """(slot, natural position or None, row or record) of this part's share of an epoch."""
        if self.index.shards:
            return shard_epoch(self.index, epoch, part, shuffle=self.shuffle, seed=self.seed,
                               buffer=self.shuffle_buffer, even=self.even, done=done)
        return list_epoch(self.index, epoch, part, shuffle=self.shuffle, seed=self.seed,
                          window=self.shuffle_window, even=self.even, done=done)

    def positions(self, epoch: int | None = None, part: Part | None = None) -> list[int]:
        """A list's natural row positions that this rank and worker (or `part`) take in an epoch,
        in order (reads the index's rows, fetches nothing)."""
        if self.index.shards:
            raise UsageProblem("positions() is for URL lists; a dataset's shards have keys (iterate them)")
        epoch = self.epoch if epoch is None else epoch
        return [position for _, position, _ in self._sequence(epoch, part or self.part())]

    def order(self, epoch: int | None = None) -> list[int]:
        """A list's natural row positions in an epoch's order, before it is dealt out."""
        return self.positions(epoch, Part())

    # --- iteration -------------------------------------------------------------------

    def __iter__(self) -> Iterator[dict]:
        skipped = set(self._ahead)
        sequence = ((slot, position, row) for slot, position, row in self._sequence(self.epoch, self.part(),
                                                                                   self._done)
                    if slot not in skipped)
        if self.index.shards:
            records = (_slotted(record, slot) for slot, _, record in sequence)
        else:
            records = self._fetched(_slotted(self._record(row), slot) for slot, _, row in sequence)
        worker = (self.worker or (0, 1))[0]
        for record in records:
            self._processed(record.pop("_slot"))
            sample = self._sample(record)
            if isinstance(sample, dict):
                # where this worker stands once the sample is used: what a resume starts from
                yield {**sample, "__worker__": worker, "__epoch__": self.epoch, "__done__": self._done,
                       "__ahead__": sorted(self._ahead)}
            elif sample is not None:  # a transform's own type: no resume marks
                yield sample
        self.epoch, self._done, self._ahead = self.epoch + 1, 0, set()  # the next iteration: the next epoch

    def _processed(self, slot: int) -> None:
        self._ahead.add(slot)
        while self._done in self._ahead:
            self._ahead.remove(self._done)
            self._done += 1

    def __getitem__(self, index: int) -> dict:
        """Row `index` of the index (not of an epoch's order), fetched or read from the cache
        now; raises LookupError if it cannot be had."""
        size = len(self.index)
        if not -size <= index < size:
            raise IndexError(index)
        index %= size
        if self.index.shards:
            record = self._shard_record(index)
        else:
            [record] = self._fetched(iter([self._record(self.index.row(index))]))
        sample = self._sample(record)
        if sample is None:
            raise LookupError(f"sample {index} ({record.get('url')}): {record.get('error_message') or 'failed'}")
        return sample

    def _shard_record(self, index: int) -> dict:
        for shard, count in enumerate(self.index.shard_counts()):
            if index < count:
                return next(itertools.islice(self.index.records(shard), index, None))
            index -= count
        raise IndexError(index)

    def _record(self, row: bytes) -> dict:
        record = orjson.loads(row)
        cached = self.cache.get(_cache_key(record)) if self.cache is not None else None
        if cached is not None:
            record = _unpacked(cached)
            self.counts["cache_hit"] += 1
        return record

    def _fetched(self, records: Iterator[dict]) -> Iterator[dict]:
        """Records with their payloads: downloads `read_ahead` at a time."""
        import dataclasses

        from ..fetch import fetch

        options = dataclasses.replace(self.fetch_options, ordered=self.ordered, concurrency=self.read_ahead,
                                      lookahead=self.read_ahead)
        for record in fetch(records, options):
            if self.cache is not None and record.get(rec.FILES) and record.get("status") in (None, "success"):
                if not record.get("_cached"):
                    self.cache.put(_cache_key(record), _packed(record))
            yield record

    def _sample(self, record: dict) -> dict | None:
        if record.get("status") not in (None, "success") or not record.get(rec.FILES):
            self.counts[record.get("status") or "no_payload"] += 1
            return None
        record = rec.decode_payloads(record)
        sample = {"__key__": record.get("key"), "__url__": record.get("url"), **record[rec.FILES],
                  "json": {name: value for name, value in record.items() if name not in (rec.FILES, "_cached")}}
        if record.get("caption") is not None:
            sample["txt"] = record["caption"]
        if self.transform is not None:
            try:
                sample = self.transform(sample)
            except Exception as error:  # noqa: BLE001 - a user's transform: skip the sample, count why
                self.counts[f"transform_error: {type(error).__name__}"] += 1
                return None
            if sample is None:
                self.counts["transform_dropped"] += 1
                return None
        self.counts["success"] += 1
        return sample

    # --- cache -------------------------------------------------------------------------

    @property
    def cache(self):
        if self._cache is None and (self.cache_dir is not None or self.cache_budget is not None):
            from .cache import Cache

            self._cache = Cache(self.cache_dir, budget=self.cache_budget if self.cache_budget is not None else "10GB")
        return self._cache

    # --- resume ------------------------------------------------------------------------

    def state_dict(self) -> dict:
        """Where this rank and worker are: resumes exactly with load_state_dict (same index,
        seed, ranks and workers)."""
        return {"epoch": self.epoch, "done": self._done, "ahead": sorted(self._ahead), "seed": self.seed,
                "index": self.index.signature, "counts": dict(self.counts)}

    def load_state_dict(self, state: dict) -> None:
        same_index = state.get("index", self.index.signature) == self.index.signature
        if state.get("seed", self.seed) != self.seed or not same_index:
            raise UsageProblem("this state is of another index or seed: it would not resume the same sequence")
        self.epoch, self._done, self._ahead = state["epoch"], state["done"], set(state.get("ahead") or ())
        self.counts = Counter(state.get("counts") or {})

    def resume_at(self, epoch: int, done: int, ahead: list[int] = ()) -> None:
        """Go on in `epoch` after the first `done` slots of this rank's and worker's slice and the
        `ahead` ones after them (a used sample's __epoch__, __done__ and __ahead__)."""
        self.epoch, self._done, self._ahead = epoch, done, set(ahead)


def _distributed() -> tuple[int, int]:
    """(rank, world size) from torch.distributed when it runs, else (0, 1)."""
    try:
        import torch.distributed as dist
    except ImportError:
        return 0, 1
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _slotted(record: dict, slot: int) -> dict:
    """A fresh record with its slot (where it stands in this part's epoch)."""
    record["_slot"] = slot
    return record


def _cache_key(record: dict) -> str:
    return str(record.get("url") or record.get("key"))


def _packed(record: dict) -> bytes:
    """A downloaded record for the cache: its metadata as JSON, then its payloads raw."""
    record = rec.decode_payloads(record)
    files = record[rec.FILES]
    header = orjson.dumps({"record": {k: v for k, v in record.items() if k != rec.FILES},
                           "files": [[name, len(data)] for name, data in files.items()]}, default=rec.json_default)
    return len(header).to_bytes(4, "little") + header + b"".join(files.values())


def _unpacked(data: bytes) -> dict:
    size = int.from_bytes(data[:4], "little")
    header = orjson.loads(data[4:4 + size])
    record, position, files = header["record"], 4 + size, {}
    for name, length in header["files"]:
        files[name] = data[position:position + length]
        position += length
    record[rec.FILES] = files
    record["_cached"] = True
    return record
