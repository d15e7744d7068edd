"""any2dataset.download(): img2dataset's arguments from Python.

    python examples/simple_example.py [OUTPUT_FOLDER]   (default: examples/out-simple)

Serves the files in examples/data over HTTP on 127.0.0.1 (no internet needed), writes a
URL list, downloads it into a webdataset resized to 128 px, and prints the summary.
"""

import functools
import http.server
import os
import sys
import tempfile
import threading

from any2dataset import download

HERE = os.path.dirname(os.path.abspath(__file__))


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def serve(folder: str) -> http.server.ThreadingHTTPServer:
    handler = functools.partial(QuietHandler, directory=folder)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> None:
    output_folder = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "out-simple")
    data = os.path.join(HERE, "data")
    server = serve(data)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    with tempfile.TemporaryDirectory() as work:
        url_list = os.path.join(work, "urls.txt")
        with open(url_list, "w") as urls:
            # The images only: with resizing on, a file that is not an image fails (decode_error),
            # as in img2dataset; disable_all_reencoding=True would keep every file as it is.
            urls.writelines(f"{base}/{name}\n" for name in sorted(os.listdir(data)) if name.endswith(".png"))
        report = download(
            url_list=url_list,
            output_folder=output_folder,
            output_format="webdataset",
            input_format="txt",
            image_size=128,
            resize_mode="border",
            processes_count=2,
            thread_count=16,
            number_sample_per_shard=5,
            incremental_mode="overwrite",
            quiet=True,
        )
    server.shutdown()
    print(f"{report['records']} rows, {report['statuses']['success']} files in {output_folder}: "
          f"{report['shards']['complete']} shards")


if __name__ == "__main__":
    main()
