"""The `files` layout: one folder per shard holding `{key}.{ext}`, `{key}.txt`, `{key}.json`,
as img2dataset's files format; the folder is renamed into place when whole."""

import os

from .webdataset import sample_members


class FilesSink:
    suffix = ""  # the shard's folder is named by the shard alone
    holds_metadata = False

    def __init__(self, temp_path: str, schema=None, expected_size=None):
        self.folder = temp_path
        os.makedirs(self.folder)

    def add_sample(self, record: dict) -> None:
        key = record["key"]
        for extension, data in sample_members(record).items():
            with open(os.path.join(self.folder, f"{key}.{extension}"), "wb") as stream:
                stream.write(data)

    def close(self) -> None:
        pass
