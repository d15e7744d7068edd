"""Several loader datasets as one stream, mixed as a2d-mix mixes (any2dataset.mix).

    mixed = MixedDataset([Dataset("laion.parquet"), Dataset("coco.csv")], weights=[3, 1], seed=0)

Each rank and worker mixes its own slices with the same seed, so the proportions hold across
ranks. The mix's draws are seeded by (seed, epoch); each dataset keeps its own position, and
`state_dict()` holds theirs and the mix's, so a run resumes exactly where it stopped.
"""

from collections.abc import Iterator

from ..mix import Mixer, MixOptions
from .order import seed_of


class MixedDataset:
    def __init__(self, datasets: list, *, weights: list[float] | None = None, mode: str = "random",
                 block: int | None = None, seed: int = 0, until: str = "all"):
        self.datasets = list(datasets)
        self.options = dict(mode=mode, weights=weights, block=block, until=until)
        MixOptions(seed=seed, **self.options).weights_for(len(self.datasets))  # checked now, not mid-epoch
        self.seed = seed
        self.epoch = 0
        self._mixer: Mixer | None = None
        self._resume: dict | None = None  # a loaded mix state, for the next iteration

    def set_epoch(self, epoch: int) -> None:
        for dataset in self.datasets:
            dataset.set_epoch(epoch)
        if epoch != self.epoch:
            self.epoch, self._mixer, self._resume = epoch, None, None

    def for_worker(self, worker: int, workers: int) -> "MixedDataset":
        for dataset in self.datasets:
            dataset.for_worker(worker, workers)
        return self

    def __iter__(self) -> Iterator[dict]:
        mixer = Mixer([iter(dataset) for dataset in self.datasets],
                      MixOptions(seed=seed_of(self.seed, self.epoch), **self.options))
        if self._resume is not None:
            mixer.load_state_dict(self._resume, skip_taken=False)  # each dataset resumed itself
            self._resume = None
        self._mixer = mixer
        yield from mixer
        self.set_epoch(self.epoch + 1)

    @property
    def taken(self) -> list[int]:
        """Samples taken from each dataset so far this epoch."""
        return list(self._mixer.taken) if self._mixer is not None else [0] * len(self.datasets)

    def state_dict(self) -> dict:
        mix = self._mixer.state_dict() if self._mixer is not None else self._resume
        return {"epoch": self.epoch, "mix": mix, "datasets": [dataset.state_dict() for dataset in self.datasets]}

    def load_state_dict(self, state: dict) -> None:
        for dataset, own in zip(self.datasets, state["datasets"]):
            dataset.load_state_dict(own)
        self.epoch, self._mixer, self._resume = state["epoch"], None, state["mix"]
