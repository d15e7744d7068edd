"""Train straight from a URL list: any2dataset.loader over the bundled example images.

    python examples/train_from_list.py [CACHE_FOLDER]   (default: a temporary folder)

Serves examples/data over HTTP on 127.0.0.1 (no internet needed), lists its images, and runs
two epochs of a (pretend) training loop over them: each image downloaded once, decoded and
resized by a transform, the second epoch served from the disk cache. With torch installed it
goes through a DataLoader with two worker processes.
"""

import functools
import http.server
import io
import os
import sys
import tempfile
import threading

from any2dataset.loader.dataset import Dataset

HERE = os.path.dirname(os.path.abspath(__file__))


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def to_small_image(sample: dict) -> dict:
    from PIL import Image

    image = Image.open(io.BytesIO(sample["png"])).convert("RGB").resize((32, 32))
    return {"key": sample["__key__"], "pixels": image.tobytes(), "caption": sample.get("txt")}


def batches(dataset):
    try:
        from torch.utils.data import DataLoader

        from any2dataset.loader.torch_dataset import TorchDataset
    except ImportError:
        return iter(dataset)  # a plain Python iterable without torch
    return iter(DataLoader(TorchDataset(dataset), batch_size=None, num_workers=2, collate_fn=lambda sample: sample))


def main() -> None:
    data = os.path.join(HERE, "data")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=data))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    with tempfile.TemporaryDirectory() as work:
        url_list = os.path.join(work, "images.csv")
        with open(url_list, "w") as rows:
            rows.write("url,caption\n")
            rows.writelines(f"{base}/{name},{name[:-4].replace('-', ' ')}\n"
                            for name in sorted(os.listdir(data)) if name.endswith(".png"))
        cache = sys.argv[1] if len(sys.argv) > 1 else os.path.join(work, "cache")
        dataset = Dataset(url_list, caption_col="caption", transform=to_small_image, seed=0,
                          cache_dir=cache, cache_budget="50MB")
        for epoch in range(2):
            dataset.set_epoch(epoch)
            seen = [sample["key"] for sample in batches(dataset)]
            print(f"epoch {epoch}: {len(seen)} samples, first {seen[0]}")
        from any2dataset.loader.cache import Cache

        with Cache(cache, budget="50MB") as kept:
            print(f"cache: {kept.stats()['entries']} images kept for the next epoch")
    server.shutdown()


if __name__ == "__main__":
    main()
