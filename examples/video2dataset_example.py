"""any2dataset.video2dataset(): video2dataset's arguments and config from Python.

    python examples/video2dataset_example.py [OUTPUT_FOLDER]   (default: examples/out-video)

Makes two short test videos with ffmpeg, serves them over HTTP on 127.0.0.1 (no internet
needed), lists them in a csv with captions and clip spans, and downloads them into a
webdataset of 1-second clips resized to 96 px squares, with a config as video2dataset takes it.
"""

import functools
import http.server
import os
import subprocess
import sys
import tempfile
import threading

from any2dataset import video2dataset

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIG = {
    "subsampling": {
        "ClippingSubsampler": {"args": {"min_length": 0.5, "max_length": 1.0}},
        "ResolutionSubsampler": {"args": {"video_size": 96, "resize_mode": "scale,crop,pad"}},
    },
    "storage": {"number_sample_per_shard": 100},
    "distribution": {"processes_count": 2, "thread_count": 8},
}


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def make_video(path: str, seconds: int) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc=duration={seconds}:size=320x240:rate=15", "-f", "lavfi", "-i", f"sine=duration={seconds}",
                    "-shortest", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", path], check=True)


def main() -> None:
    output_folder = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "out-video")
    with tempfile.TemporaryDirectory() as work:
        make_video(os.path.join(work, "pattern.mp4"), 4)
        make_video(os.path.join(work, "short.mp4"), 2)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=work))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{server.server_address[1]}"
        url_list = os.path.join(work, "videos.jsonl")
        with open(url_list, "w") as rows:
            rows.write(f'{{"url": "{base}/pattern.mp4", "caption": "a test pattern", "clips": [[0, 3]]}}\n')
            rows.write(f'{{"url": "{base}/short.mp4", "caption": "a short one", "clips": [[0.5, 1.5]]}}\n')
        report = video2dataset(url_list=url_list, input_format="jsonl", caption_col="caption", clip_col="clips",
                               output_format="webdataset", output_folder=output_folder,
                               incremental_mode="overwrite", config=CONFIG, quiet=True)
        server.shutdown()
    print(f"{report['records']} clips from 2 videos in {output_folder}: {report['statuses']['success']} saved, "
          f"{report['shards']['complete']} shard")


if __name__ == "__main__":
    main()
