"""The loader as a torch IterableDataset, for DataLoader(num_workers=N) and DDP ranks.

torch is optional (the `torch` extra, or your own torch build): without it the Dataset is a
plain Python iterable. Each DataLoader worker gets its share of this rank's samples (torch's
worker info), so every sample is seen once per epoch across ranks and workers. Make the
DataLoader before the dataset is iterated or its cache opened in the parent: workers are
forked copies, each opening the cache itself."""

from ..errors import MissingExtra

try:
    from torch.utils.data import IterableDataset, get_worker_info
except ImportError:  # the class below then refuses to be made, naming the extra
    IterableDataset, get_worker_info = object, None


class TorchDataset(IterableDataset):
    """`resume`: a ResumeTracker's state_dict() from an interrupted run; each worker then goes on
    after the last sample the training loop used from it, none repeated or skipped."""

    def __init__(self, dataset, resume: dict | None = None):
        if get_worker_info is None:
            raise MissingExtra("the loader's torch DataLoader integration", "torch", "torch")
        super().__init__()
        self.dataset = dataset
        self.resume = resume

    def __iter__(self):
        info = get_worker_info()
        worker = 0 if info is None else info.id
        if info is not None:
            self.dataset.for_worker(info.id, info.num_workers)
        if self.resume and str(worker) in self.resume["workers"]:
            epoch, done = self.resume["workers"][str(worker)]
            self.dataset.resume_at(epoch, done)
        return iter(self.dataset)

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)


class ResumeTracker:
    """What the training loop has used, per DataLoader worker: `update(sample_or_batch)` after
    each step; `state_dict()` to save with the model; TorchDataset(dataset, resume=state) to
    go on. (DataLoader workers prefetch: their own positions run ahead of what was used.)"""

    def __init__(self, state: dict | None = None):
        saved = (state or {}).get("workers", {})
        self.workers: dict[str, list[int]] = {key: list(value) for key, value in saved.items()}

    def update(self, used: dict) -> None:
        workers, dones, epochs = (_values(used[name]) for name in ("__worker__", "__done__", "__epoch__"))
        for worker, done, epoch in zip(workers, dones, epochs):
            key = str(worker)
            if key not in self.workers or (epoch, done) > tuple(self.workers[key]):
                self.workers[key] = [epoch, done]

    def state_dict(self) -> dict:
        return {"workers": {key: list(value) for key, value in self.workers.items()}}


def _values(value) -> list[int]:
    """A sample's int, or a collated batch's tensor or list of them."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    return [int(item) for item in value] if isinstance(value, (list, tuple)) else [int(value)]
