"""The `files` layout: one folder per shard holding `{key}.{ext}`, `{key}.txt`, `{key}.json`,
as img2dataset's files format; the folder is renamed into place when whole."""

import os

from .background import BackgroundWriter, write_file
from .sink import SampleSink, SinkSettings, sample_members


class FilesSink(SampleSink):
    suffixes = ("", ".parquet")  # the shard's folder is named by the shard alone

    def __init__(self, temp_path, settings: SinkSettings):
        super().__init__(temp_path, settings)
        self.folder = temp_path("")
        os.makedirs(self.folder)
        self.io = BackgroundWriter()  # one thread: two contend for the folder lock (measured 2.6x slower)

    def add_sample(self, record: dict) -> None:
        key = record["key"]
        for extension, data in sample_members(record).items():
            self.io.submit(write_file, os.path.join(self.folder, f"{key}.{extension}"), data)

    def close(self) -> None:
        self.io.close()
