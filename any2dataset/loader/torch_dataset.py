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
    def __init__(self, dataset):
        if get_worker_info is None:
            raise MissingExtra("the loader's torch DataLoader integration", "torch", "torch")
        super().__init__()
        self.dataset = dataset

    def __iter__(self):
        info = get_worker_info()
        if info is not None:
            self.dataset.for_worker(info.id, info.num_workers)
        return iter(self.dataset)

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)
