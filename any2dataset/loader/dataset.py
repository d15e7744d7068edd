"""Train straight from a URL list or an a2d dataset: an iterable (and indexable) dataset.

    from any2dataset.loader import Dataset

    dataset = Dataset("urls.parquet", caption_col="caption", cache_dir="/tmp/cache", cache_budget="20GB",
                      shuffle=True, seed=0)
    for epoch in range(3):
        dataset.set_epoch(epoch)
        for sample in dataset:      # {"__key__", "__url__", "jpg": bytes, "txt": str, "json": {...}}
            ...

The index (anything a2d-read reads: lists, compressed, globs, folders, fsspec URLs, and
datasets a2d-write produced) is read once into a compact in-memory index (one JSON line a
row). Each epoch orders it by (seed, epoch): a seeded permutation, or the list's order
with shuffle=False. The order is split between ranks (torch.distributed, or given) and then
between a DataLoader's workers (torch's worker info, or given), so every sample is seen once
per epoch across them all; `even` trims ("drop") or wraps ("pad") the index so every rank has
as many samples, as DDP needs.

Samples are downloaded by a2d-fetch's engine in this process (its limits, guards, retries
and error kinds), `read_ahead` at a time, and yielded in the epoch's order, so a run is
reproducible and `state_dict()` (epoch, and positions done) resumes it exactly: no sample
repeated or skipped. A failed download or a transform that raises skips the sample and is
counted (`counts`), never a crash or a hang. With a cache (cache.py) payloads are kept on
disk under a byte budget and served from there on the next epoch or restart.
"""

import random
from collections import Counter
from collections.abc import Callable, Iterator

import orjson
import xxhash

from .. import record as rec
from ..errors import UsageProblem
from ..fetch.options import FetchOptions
from ..read import ReadOptions, read

EVEN_MODES = (None, "drop", "pad")


class Dataset:
    def __init__(self, source: str | list[str], *, input_format: str | None = None, url_col: str = "url",
                 caption_col: str | None = None, save_additional_columns: list[str] | None = None,
                 transform: Callable[[dict], dict] | None = None, shuffle: bool = True, seed: int = 0,
                 rank: int | None = None, world_size: int | None = None, even: str | None = None,
                 cache_dir: str | None = None, cache_budget: int | str | None = None, read_ahead: int = 64,
                 fetch_options: FetchOptions | None = None):
        if even not in EVEN_MODES:
            raise UsageProblem(f"even must be one of {EVEN_MODES}, not {even!r}")
        if read_ahead < 1:
            raise UsageProblem("read_ahead must be at least 1")
        self.sources = [source] if isinstance(source, str) else list(source)
        self.read_options = ReadOptions(input_format=input_format, url_col=url_col, caption_col=caption_col,
                                        save_additional_columns=save_additional_columns)
        self.transform = transform
        self.shuffle, self.seed, self.even = shuffle, seed, even
        self.rank, self.world_size = rank, world_size
        self.worker: tuple[int, int] | None = None  # (id, count): set by for_worker or torch's worker info
        self.read_ahead = read_ahead
        self.fetch_options = fetch_options or FetchOptions(retries=1)
        self.cache_dir, self.cache_budget = cache_dir, cache_budget
        self._cache = None
        self._rows: list[bytes] | None = None
        self.epoch = 0
        self._done = 0  # positions of this epoch's slice already yielded or skipped
        self.counts: Counter = Counter()  # success, failed_to_download, transform_error, ...

    # --- the index -------------------------------------------------------------------

    @property
    def rows(self) -> list[bytes]:
        """The index: one compact JSON line per row, read once."""
        if self._rows is None:
            self._rows = [orjson.dumps(row, default=rec.json_default) for row in read(self.sources, self.read_options)]
        return self._rows

    def __len__(self) -> int:
        return len(self.rows)

    # --- order and slicing -------------------------------------------------------------

    def set_epoch(self, epoch: int) -> None:
        """The epoch whose order the next iteration follows (a new epoch starts at its beginning)."""
        if epoch != self.epoch:
            self.epoch, self._done = epoch, 0

    def for_worker(self, worker: int, workers: int) -> "Dataset":
        """This dataset as seen by one of `workers` loader workers (torch's DataLoader sets it
        itself, through TorchDataset)."""
        if not 0 <= worker < workers:
            raise UsageProblem(f"worker {worker} of {workers}: need 0 <= worker < workers")
        self.worker = (worker, workers)
        return self

    def order(self, epoch: int | None = None) -> list[int]:
        """Every row's position for an epoch, before slicing: seeded per (seed, epoch)."""
        epoch = self.epoch if epoch is None else epoch
        positions = list(range(len(self.rows)))
        if self.shuffle:
            random.Random(xxhash.xxh64_intdigest(f"{self.seed}:{epoch}".encode())).shuffle(positions)
        return positions

    def positions(self, epoch: int | None = None) -> list[int]:
        """The rows this rank and worker take in an epoch, in order."""
        order = self.order(epoch)
        rank, world = self._ranks()
        if self.even == "drop":
            order = order[:len(order) // world * world]
        elif self.even == "pad" and order and len(order) % world:
            order = order + order[:world - len(order) % world]
        mine = order[rank::world]
        worker, workers = self.worker or (0, 1)
        return mine[worker::workers]

    def _ranks(self) -> tuple[int, int]:
        if self.world_size is not None:
            rank, world = self.rank or 0, self.world_size
        else:
            rank, world = _distributed()
        if not 0 <= rank < world:
            raise UsageProblem(f"rank {rank} of world size {world}: need 0 <= rank < world size")
        return rank, world

    # --- iteration -------------------------------------------------------------------

    def __iter__(self) -> Iterator[dict]:
        positions = self.positions()
        start = self._done
        records = (self._record(position) for position in positions[start:])
        worker = (self.worker or (0, 1))[0]
        for record in self._fetched(records):
            self._done += 1
            sample = self._sample(record)
            if isinstance(sample, dict):
                # where this worker stands once the sample is used: what a resume starts from
                yield {**sample, "__worker__": worker, "__done__": self._done, "__epoch__": self.epoch}
            elif sample is not None:  # a transform's own type: no resume marks
                yield sample
        self.epoch, self._done = self.epoch + 1, 0  # the next iteration is the next epoch

    def __getitem__(self, index: int) -> dict:
        """Row `index` of the index (not of an epoch's order), fetched or read from the cache
        now; raises LookupError if it cannot be had."""
        if not -len(self.rows) <= index < len(self.rows):
            raise IndexError(index)
        [record] = self._fetched(iter([self._record(index % len(self.rows))]))
        sample = self._sample(record)
        if sample is None:
            raise LookupError(f"sample {index} ({record.get('url')}): {record.get('error_message') or 'failed'}")
        return sample

    def _record(self, position: int) -> dict:
        record = orjson.loads(self.rows[position])
        record.setdefault("key", f"{position:012d}")
        cached = self.cache.get(_cache_key(record)) if self.cache is not None else None
        if cached is not None:
            record = _unpacked(cached)
            self.counts["cache_hit"] += 1
        return record

    def _fetched(self, records: Iterator[dict]) -> Iterator[dict]:
        """Records with their payloads: downloads `read_ahead` at a time, in input order."""
        import dataclasses

        from ..fetch import fetch

        options = dataclasses.replace(self.fetch_options, ordered=True, concurrency=self.read_ahead,
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
        return {"epoch": self.epoch, "done": self._done, "seed": self.seed, "rows": len(self.rows),
                "counts": dict(self.counts)}

    def load_state_dict(self, state: dict) -> None:
        if state.get("seed", self.seed) != self.seed or state.get("rows", len(self.rows)) != len(self.rows):
            raise UsageProblem("this state is of another index or seed: it would not resume the same sequence")
        self.epoch, self._done = state["epoch"], state["done"]
        self.counts = Counter(state.get("counts") or {})

    def resume_at(self, epoch: int, done: int) -> None:
        """Go on in `epoch` after its first `done` positions of this rank's and worker's slice
        (a sample's __epoch__ and __done__)."""
        self.epoch, self._done = epoch, done


def _distributed() -> tuple[int, int]:
    """(rank, world size) from torch.distributed when it runs, else (0, 1)."""
    try:
        import torch.distributed as dist
    except ImportError:
        return 0, 1
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


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
