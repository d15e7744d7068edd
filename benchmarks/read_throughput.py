"""Rows/s and peak memory of a2d-read on generated URL lists.

    python benchmarks/read_throughput.py [--rows 1000000] [--runs 3] [--also-10m]

Writes a two-column (url, caption) csv and parquet of --rows rows into a temporary
folder, runs `a2d-read -q FILE > /dev/null` --runs times for each, and prints the
median rows/s and peak RSS (the child's own maximum resident set, from wait4).
With --also-10m it repeats with 10x the rows, to show memory stays flat.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

from measure import medians, run_measured


def make_lists(folder: str, rows: int) -> dict[str, str]:
    """Generate the lists in a child process: a forked child's peak RSS starts from its
    parent's, so the measuring process must stay small (no pyarrow, no big lists)."""
    subprocess.run([sys.executable, __file__, "--make", folder, str(rows)], check=True)
    return {"csv": os.path.join(folder, f"urls-{rows}.csv"), "parquet": os.path.join(folder, f"urls-{rows}.parquet")}


def _make(folder: str, rows: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    csv_path = os.path.join(folder, f"urls-{rows}.csv")
    with open(csv_path, "w") as out:
        out.write("url,caption\n")
        chunk = 100_000
        for start in range(0, rows, chunk):
            out.write("".join(f"http://127.0.0.1:8000/images/{i:09d}.jpg,a caption number {i} with some words\n"
                              for i in range(start, min(rows, start + chunk))))
    parquet_path = os.path.join(folder, f"urls-{rows}.parquet")
    writer = None
    for start in range(0, rows, 1_000_000):
        ids = range(start, min(rows, start + 1_000_000))
        table = pa.table({"url": [f"http://127.0.0.1:8000/images/{i:09d}.jpg" for i in ids],
                          "caption": [f"a caption number {i} with some words" for i in ids]})
        writer = writer or pq.ParquetWriter(parquet_path, table.schema)
        writer.write_table(table)
    writer.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--also-10m", action="store_true")
    parser.add_argument("--make", nargs=2, metavar=("FOLDER", "ROWS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make:
        return _make(args.make[0], int(args.make[1]))
    a2d_read = shutil.which("a2d-read") or os.path.join(os.path.dirname(__file__), "..", "bin", "a2d-read")
    sizes = [args.rows] + ([args.rows * 10] if args.also_10m else [])
    folder = tempfile.mkdtemp(prefix="a2d-read-bench-")
    try:
        print(f"a2d-read -q FILE > /dev/null, median of {args.runs} runs")
        print(f"{'input':<28}{'rows/s':>12}{'wall s':>10}{'peak MiB':>10}")
        for rows in sizes:
            for fmt, path in make_lists(folder, rows).items():
                median = medians([run_measured([a2d_read, "-q", path]) for _ in range(args.runs)])
                print(f"{fmt + f' ({rows:,} rows)':<28}{rows / median.seconds:>12,.0f}{median.seconds:>10.2f}"
                      f"{median.peak_mib:>10.0f}")
    finally:
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()
