"""The loader in torch's DataLoader with worker processes, for two DDP ranks: every sample
once per epoch; and without torch, a clear message naming the extra."""

import json
import subprocess

import pytest

# A test may wait for its venv, which conftest.py builds in the background (minutes on a fresh
# machine): longer than the suite's per-test limit.
pytestmark = pytest.mark.timeout(1800)

SCRIPT = r"""
import json, sys
from torch.utils.data import DataLoader
from any2dataset.loader.dataset import Dataset
from any2dataset.loader.torch_dataset import TorchDataset

url_list = sys.argv[1]
seen = {}
for epoch in range(2):
    for rank in range(2):
        dataset = Dataset(url_list, seed=7, rank=rank, world_size=2, even="pad")
        dataset.set_epoch(epoch)
        loader = DataLoader(TorchDataset(dataset), batch_size=None, num_workers=2)
        seen[f"{epoch}/{rank}"] = [sample["__key__"] for sample in loader]
print(json.dumps(seen))
"""


def test_dataloader_workers_and_ranks_see_every_sample_once(http_server, tmp_path):
    from torch_env import find_or_build_venv

    python = find_or_build_venv() / "bin" / "python"
    url_list = tmp_path / "urls.txt"
    url_list.write_text("".join(http_server.url(f"torchloader/{i}.bin", size=50 + i) + "\n" for i in range(21)))
    done = subprocess.run([str(python), "-c", SCRIPT, str(url_list)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout)
    for epoch in (0, 1):
        ranks = [seen[f"{epoch}/{rank}"] for rank in (0, 1)]
        # pad: 22 positions, 11 a rank (one sample seen twice), each rank's split between its 2 workers
        assert [len(keys) for keys in ranks] == [11, 11]
        assert set(ranks[0]) | set(ranks[1]) == {f"{i:012d}" for i in range(21)}
        assert len(set(ranks[0]) & set(ranks[1])) == 1


def test_without_torch_the_extra_is_named(tmp_path):
    pytest.importorskip("any2dataset.loader.torch_dataset")
    from any2dataset.errors import MissingExtra
    from any2dataset.loader import torch_dataset

    if torch_dataset.get_worker_info is not None:
        pytest.skip("torch is installed here")
    with pytest.raises(MissingExtra, match=r"pip install 'any2dataset\[torch\]'"):
        torch_dataset.TorchDataset(object())


RESUME = r"""
import itertools, json, sys
from torch.utils.data import DataLoader
from any2dataset.loader.dataset import Dataset
from any2dataset.loader.torch_dataset import ResumeTracker, TorchDataset

url_list = sys.argv[1]
def as_lists(samples):  # metadata has nulls, which torch's default collate refuses
    return {name: [sample[name] for sample in samples] for name in samples[0]}

def loader(resume=None):
    return DataLoader(TorchDataset(Dataset(url_list, seed=3), resume=resume), batch_size=3, num_workers=2,
                      collate_fn=as_lists)

whole = [key for batch in loader() for key in batch["__key__"]]
tracker, used = ResumeTracker(), []
for batch in itertools.islice(loader(), 4):  # 4 batches used, then the run stops
    used += batch["__key__"]
    tracker.update(batch)
rest = [key for batch in loader(json.loads(json.dumps(tracker.state_dict()))) for key in batch["__key__"]]
print(json.dumps({"whole": whole, "used": used, "rest": rest}))
"""


def test_a_dataloader_run_resumes_after_the_samples_it_used(http_server, tmp_path):
    from torch_env import find_or_build_venv

    python = find_or_build_venv() / "bin" / "python"
    url_list = tmp_path / "urls.txt"
    url_list.write_text("".join(http_server.url(f"torchresume/{i}.bin", size=30) + "\n" for i in range(25)))
    done = subprocess.run([str(python), "-c", RESUME, str(url_list)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = json.loads(done.stdout)
    assert len(runs["used"]) == 12 and len(runs["whole"]) == 25
    assert sorted(runs["used"] + runs["rest"]) == sorted(runs["whole"])  # none repeated, none skipped
