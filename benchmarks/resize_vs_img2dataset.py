"""Images/s per core resizing JPEGs to 256 px border mode: a2d-subsample against img2dataset's resizer.

    python benchmarks/resize_vs_img2dataset.py [--images 600] [--runs 3] [--img2dataset-python PATH]

Generates --images photo-like JPEGs (smooth gradients, shapes and grain, quality 90)
with sides mixed between 300 and 2,000 px, then, each --runs times, alternating:

- `a2d-subsample -w 1 --image-size 256 --resize-mode border` on a JSONL stream of them
  (the whole command on one core: parsing, base64 both ways, resizing, encoding);
- img2dataset's own `Resizer` (OpenCV) on the same bytes, called in a loop in a Python
  that has img2dataset installed (--img2dataset-python; by default the interpreter
  next to an `img2dataset` on PATH), which is its per-image cost without any I/O.

Prints the median images/s of each (one process, one core) and the peak RSS.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

from measure import Run, medians, run_measured

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

MAKE_IMAGES = """
import base64, io, random, sys
import orjson
from PIL import Image, ImageDraw, ImageFilter
count, out_jsonl, out_raw = int(sys.argv[1]), sys.argv[2], sys.argv[3]
random.seed(1)
with open(out_jsonl, "wb") as jsonl, open(out_raw, "wb") as raw:
    for i in range(count):
        w, h = random.randint(300, 2000), random.randint(300, 2000)
        image = Image.linear_gradient("L").resize((w, h)).convert("RGB")
        draw = ImageDraw.Draw(image)
        for _ in range(12):
            x, y = random.randint(0, w), random.randint(0, h)
            r = random.randint(20, max(21, min(w, h) // 3))
            draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(random.randint(0, 255) for _ in range(3)))
        grain = Image.effect_noise((w, h), 24).convert("RGB")
        image = Image.blend(image.filter(ImageFilter.GaussianBlur(2)), grain, 0.15)
        data = io.BytesIO()
        image.save(data, "JPEG", quality=90)
        data = data.getvalue()
        jsonl.write(orjson.dumps({"key": f"{i:09d}", "status": "success",
                                  "files": {"jpg": base64.b64encode(data).decode()}}) + b"\\n")
        raw.write(len(data).to_bytes(4, "little") + data)
"""

IMG2DATASET_LOOP = """
import io, resource, sys, time
from img2dataset.resizer import Resizer
resizer = Resizer(image_size=256, resize_mode="border", resize_only_if_bigger=False)
images = []
with open(sys.argv[1], "rb") as raw:
    while header := raw.read(4):
        images.append(raw.read(int.from_bytes(header, "little")))
started = time.perf_counter()
for data in images:
    image, width, height, original_width, original_height, error = resizer(io.BytesIO(data))
    assert error is None, error
elapsed = time.perf_counter() - started
print(elapsed, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def img2dataset_once(python: str, raw: str) -> Run:
    env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1", OMP_NUM_THREADS="1", OPENCV_FOR_THREADS_NUM="1")
    result = subprocess.run([python, "-W", "ignore", "-c", IMG2DATASET_LOOP, raw], capture_output=True, text=True,
                            env=env, check=True)
    elapsed, peak = result.stdout.split()
    return Run(float(elapsed), float(peak), float(elapsed))  # one process looping on one core


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--runs", type=int, default=3)
    found = shutil.which("img2dataset")
    parser.add_argument("--img2dataset-python",
                        default=os.path.join(os.path.dirname(found), "python") if found else None)
    args = parser.parse_args()

    folder = tempfile.mkdtemp(prefix="a2d-resize-bench-")
    try:
        stream, raw = os.path.join(folder, "images.jsonl"), os.path.join(folder, "images.raw")
        subprocess.run([sys.executable, "-c", MAKE_IMAGES, str(args.images), stream, raw], check=True)
        print(f"{args.images} JPEGs, {os.path.getsize(raw) / 1e6:.1f} MB, sides 300-2000 px -> 256 px border; "
              f"median of {args.runs} runs, one process each")
        results = {"a2d-subsample -w 1": [], "img2dataset Resizer": []}
        for _ in range(args.runs):
            results["a2d-subsample -w 1"].append(run_measured(
                [sys.executable, "-m", "any2dataset.subsample", "-q", "-w", "1", "--image-size", "256",
                 "--resize-mode", "border"], stream, cwd=ROOT))
            if args.img2dataset_python:
                results["img2dataset Resizer"].append(img2dataset_once(args.img2dataset_python, raw))
        print(f"{'':<22}{'images/s':>10}{'peak RSS MiB':>14}")
        for name, runs in results.items():
            if runs:
                median = medians(runs)
                print(f"{name:<22}{args.images / median.seconds:>10,.0f}{median.peak_mib:>14,.0f}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
