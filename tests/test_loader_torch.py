"""The loader in torch's DataLoader with worker processes, for two DDP ranks: every sample
once per epoch; and without torch, a clear message naming the extra."""

import json
import subprocess

import pytest

SCRIPT = r"""
import json, sys
from torch.utils.data import DataLoader
from any2dataset.loader.dataset import Dataset
from any2dataset.loader.torch_dataset import TorchDataset

url_list, epoch = sys.argv[1], int(sys.argv[2])
seen = {}
for rank in range(2):
    dataset = Dataset(url_list, seed=7, rank=rank, world_size=2, even="pad")
    dataset.set_epoch(epoch)
    loader = DataLoader(TorchDataset(dataset), batch_size=None, num_workers=2)
    seen[rank] = [sample["__key__"] for sample in loader]
print(json.dumps(seen))
"""


def test_dataloader_workers_and_ranks_see_every_sample_once(http_server, tmp_path):
    from torch_env import find_or_build_venv

    python = find_or_build_venv() / "bin" / "python"
    url_list = tmp_path / "urls.txt"
    url_list.write_text("".join(http_server.url(f"torchloader/{i}.bin", size=50 + i) + "\n" for i in range(21)))
    for epoch in (0, 1):
        done = subprocess.run([str(python), "-c", SCRIPT, str(url_list), str(epoch)], capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        seen = json.loads(done.stdout)
        # pad: 22 positions, 11 a rank (one sample seen twice), each rank's split between its 2 workers
        assert [len(seen[rank]) for rank in ("0", "1")] == [11, 11]
        assert set(seen["0"]) | set(seen["1"]) == {f"{i:012d}" for i in range(21)}
        assert len(set(seen["0"]) & set(seen["1"])) == 1


def test_without_torch_the_extra_is_named(tmp_path):
    pytest.importorskip("any2dataset.loader.torch_dataset")
    from any2dataset.errors import MissingExtra
    from any2dataset.loader import torch_dataset

    if torch_dataset.get_worker_info is not None:
        pytest.skip("torch is installed here")
    with pytest.raises(MissingExtra, match=r"pip install 'any2dataset\[torch\]'"):
        torch_dataset.TorchDataset(object())
