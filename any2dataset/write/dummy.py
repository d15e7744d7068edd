"""The dummy format: no data file and no metadata parquet, `{shard}_stats.json` only, as
img2dataset's dummy format does (for benchmarks and dry runs)."""

from .sink import Sink, SinkSettings


class DummySink(Sink):
    suffixes = ()

    def __init__(self, temp_path, settings: SinkSettings):
        super().__init__(temp_path, settings)
        self.keep_failed = settings.keep_failed

    def add(self, record: dict, success: bool) -> None:
        if success or self.keep_failed:  # counted as the samples the other formats would store
            self.samples += 1
