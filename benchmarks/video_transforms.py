"""Frames/s of a2d-subsample's video transforms (ffmpeg underneath).

    python benchmarks/video_transforms.py [--videos 8] [--seconds 10] [--runs 3]

Makes --videos test videos with ffmpeg (640x480, 25 fps, H.264 with an AAC tone, --seconds
long), then runs each transform over the same JSONL stream with `a2d-subsample -w N` and
prints the median source frames processed per second and the peak RSS of the command's
own process (ffmpeg's children are not counted there).
"""

import argparse
import base64
import os
import shutil
import subprocess
import sys
import tempfile

import orjson

from measure import medians, run_measured

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRANSFORMS = {
    "resize 360 (scale)": ["--video-size", "360"],
    "fps 10": ["--video-fps", "10"],
    "clips of 2 s": ["--clip-length", "2"],
    "audio to flac 16 kHz mono": ["--audio-format", "flac", "--audio-rate", "16000", "--audio-channels", "1"],
    "probe + 1 thumbnail": ["--probe", "--thumbnails", "1"],
}


def make_stream(folder: str, videos: int, seconds: int) -> str:
    stream = os.path.join(folder, "videos.jsonl")
    with open(stream, "wb") as out:
        for i in range(videos):
            path = os.path.join(folder, f"{i}.mp4")
            subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                            f"testsrc2=duration={seconds}:size=640x480:rate=25", "-f", "lavfi", "-i",
                            f"sine=frequency={220 + 20 * i}:duration={seconds}", "-shortest", "-c:v", "libx264",
                            "-preset", "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac", path], check=True)
            with open(path, "rb") as video:
                data = base64.b64encode(video.read()).decode()
            out.write(orjson.dumps({"key": f"{i:06d}", "status": "success", "files": {"mp4": data}}) + b"\n")
    return stream


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if not shutil.which("ffmpeg"):
        sys.exit("needs ffmpeg on PATH")
    folder = tempfile.mkdtemp(prefix="a2d-video-bench-")
    try:
        stream = make_stream(folder, args.videos, args.seconds)
        frames = args.videos * args.seconds * 25
        print(f"{args.videos} videos of {args.seconds} s, 640x480 at 25 fps ({frames} frames), "
              f"-w {args.workers}, median of {args.runs} runs")
        results = {name: [] for name in TRANSFORMS}
        for _ in range(args.runs):
            for name, options in TRANSFORMS.items():
                results[name].append(run_measured([sys.executable, "-m", "any2dataset.subsample", "-q", "-w",
                                                   str(args.workers), *options], stream, cwd=ROOT))
        print(f"{'transform':<28}{'frames/s':>10}{'peak RSS MiB':>14}")
        for name, runs in results.items():
            median = medians(runs)
            print(f"{name:<28}{frames / median.seconds:>10,.0f}{median.peak_mib:>14,.0f}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
