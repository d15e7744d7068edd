"""Video pages through yt-dlp: video2dataset against a2d-video2dataset and the a2d pipeline.

    python benchmarks/video_pages.py [--pages 200] [--runs 3] [--metadata] [--nginx PATH]
                                     [--processes 2] [--threads 16]

--pages HTML pages, each with a `<video>` of its own 3-second clip (160x120, H.264 + AAC,
hard links of one file made with ffmpeg), served by nginx on 127.0.0.1; their URL list
(csv, column url) goes to each contender, which downloads every page's video through yt-dlp
(its generic extractor) into a `files` dataset:

  video2dataset      the real video2dataset 1.3.0 (the test venv of tests/video2dataset_env.py,
                     built if missing), config = its default config with
                     distribution.processes_count/thread_count = --processes/--threads and
                     number_sample_per_shard 100, yt_metadata_args off unless --metadata
  a2d-video2dataset  any2dataset.video2dataset() with the same arguments and config
  a2d pipeline       a2d-read | a2d-shard | a2d-fetch --source yt-dlp -j T*P | a2d-write

Contenders alternate run by run, each as a process tree of its own (benchmarks/e2e.py's
measure: wall, CPU of the tree, peak RSS summed over it); medians of --runs. Pages/s counts
the successes in the output's _stats.json over wall time.
"""

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [HERE, os.path.join(ROOT, "tests")]
from e2e import measure, median, shard_stats, wait_for_quiet  # noqa: E402
from fetch_vs_img2dataset import free_port, start_nginx  # noqa: E402


def make_site(folder: str, pages: int) -> None:
    site = os.path.join(folder, "files")
    os.makedirs(site)
    clip = os.path.join(folder, "clip.mp4")
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=10",
                    "-f", "lavfi", "-i", "sine=frequency=440", "-t", "3", "-c:v", "libx264", "-pix_fmt", "yuv420p",
                    "-c:a", "aac", "-shortest", clip], check=True)
    for i in range(pages):
        os.link(clip, os.path.join(site, f"clip{i}.mp4"))
        with open(os.path.join(site, f"page{i}.html"), "w") as page:
            page.write(f'<html><head><title>Clip {i}</title></head><body><video src="clip{i}.mp4"></video>'
                       "</body></html>")


def config(args) -> dict:
    metadata = {"writesubtitles": "all", "subtitleslangs": ["en"], "writeautomaticsub": True, "get_info": True}
    return {"subsampling": {},
            "reading": {"yt_args": {"download_size": 360, "download_audio_rate": 44100,
                                    **({"yt_metadata_args": metadata} if args.metadata else {})},
                        "timeout": 60, "sampler": None},
            "storage": {"number_sample_per_shard": 100, "oom_shard_count": 5, "captions_are_subtitles": False},
            "distribution": {"processes_count": args.processes, "thread_count": args.threads, "subjob_size": 1000,
                             "distributor": "multiprocessing"}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--metadata", action="store_true")
    parser.add_argument("--nginx", default="/usr/sbin/nginx")
    args = parser.parse_args()

    from video2dataset_env import _find_or_build, video2dataset_argv, video2dataset_env

    venv = _find_or_build()
    work = tempfile.mkdtemp(prefix="a2d-pages-bench-")
    os.chmod(work, 0o755)  # nginx's workers read it
    server = None
    try:
        make_site(work, args.pages)
        port = free_port()
        server = start_nginx(args.nginx, work, port)
        urls = os.path.join(work, "pages.csv")
        with open(urls, "w") as out:
            out.write("url\n" + "".join(f"http://127.0.0.1:{port}/page{i}.html\n" for i in range(args.pages)))
        out_folder = os.path.join(work, "out")
        arguments = {"url_list": urls, "input_format": "csv", "url_col": "url", "output_format": "files",
                     "output_folder": out_folder, "config": config(args)}
        ours_env = dict(os.environ, PYTHONPATH=ROOT)
        ours_env["PATH"] = f"{os.path.join(ROOT, 'bin')}{os.pathsep}{ours_env['PATH']}"
        ours_code = "import json, sys\nfrom any2dataset import video2dataset\nvideo2dataset(**json.loads(sys.argv[1]))"
        jobs = args.processes * args.threads
        contenders = {
            "video2dataset 1.3.0": (shlex.join(video2dataset_argv(venv, **arguments)), video2dataset_env()),
            "a2d-video2dataset": (shlex.join([sys.executable, "-c", ours_code, json.dumps(arguments)]), ours_env),
            f"a2d pipeline (-j {jobs})": (f"a2d-read -q {urls} | a2d-shard -q --number-sample-per-shard 100 | "
                                          f"a2d-fetch -q --source yt-dlp -j {jobs} | a2d-write -q --format files "
                                          f"{out_folder}", ours_env),
        }
        print(f"{args.pages} pages with a <video> each, nginx on 127.0.0.1, processes {args.processes} x threads "
              f"{args.threads}, yt metadata {'on' if args.metadata else 'off'}", flush=True)
        results = {name: [] for name in contenders}
        for round_number in range(args.runs):
            names = list(contenders)
            shift = round_number % len(names)
            for name in names[shift:] + names[:shift]:
                shutil.rmtree(out_folder, ignore_errors=True)
                script, env = contenders[name]
                wait_for_quiet(10)
                run, _ = measure(f"{script} > {work}/log 2>&1", work, env, work, 0.05)
                done = shard_stats(out_folder)["successes"]
                results[name].append((run, done))
                print(f"  {name:26s} {done:4d} pages  {done / run.wall:6.1f} pages/s  wall {run.wall:6.1f} s  "
                      f"cpu {run.cpu:6.1f} s  peak {run.peak_mib:5.0f} MiB", flush=True)
        print(f"\nmedians of {args.runs}:")
        print("| contender | pages/s | pages | wall s | CPU s | peak RSS MiB |")
        print("|---|---|---|---|---|---|")
        for name, runs in results.items():
            print(f"| {name} | {median(d / r.wall for r, d in runs):.1f} | {median(d for _, d in runs):.0f} | "
                  f"{median(r.wall for r, _ in runs):.1f} | {median(r.cpu for r, _ in runs):.1f} | "
                  f"{median(r.peak_mib for r, _ in runs):,.0f} |", flush=True)
    finally:
        if server is not None:
            server.terminate()
            server.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
