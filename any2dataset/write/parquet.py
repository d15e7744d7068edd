"""The parquet format: `{shard}.parquet` holds every row of the shard, its metadata and
its payloads as binary columns named by extension (null for failures), as img2dataset's
parquet output does. The same file is the shard's metadata parquet.

Rows go out in row groups as they arrive, so memory stays bounded by one row group
per open shard rather than a whole shard of payloads.
"""

import os

import pyarrow as pa
import pyarrow.parquet as pq

from .. import record as rec
from .sink import Sink, SinkSettings

ROW_GROUP_ROWS = 2048
ROW_GROUP_BYTES = 16 << 20


class ParquetSink(Sink):
    suffixes = (".parquet",)
    payloads_in_metadata = True

    def __init__(self, temp_path, settings: SinkSettings):
        super().__init__(temp_path, settings)
        self.path = temp_path(".parquet")
        self.expected_size = settings.expected_size  # rows numbered in arrival order have no shard_size yet
        self.schema = settings.schema
        self.writer: pq.ParquetWriter | None = None
        self.rows: list[dict] = []
        self.buffered_bytes = 0
        self.sizes_written: set = set()

    def add(self, record: dict, success: bool) -> None:
        """Every row, failures too (their payload columns null); successes are the samples."""
        if record.get("shard_size") is None:
            record["shard_size"] = self.expected_size
        for name in ("url", "final_url"):  # credentials are not published (record.metadata does the same)
            value = record.get(name)
            if value is not None and "@" in value:
                record = dict(record, **{name: rec.public_url(value)})
        self.rows.append(record)
        self.buffered_bytes += sum(map(len, (record.get(rec.FILES) or {}).values()))
        if len(self.rows) >= ROW_GROUP_ROWS or self.buffered_bytes >= ROW_GROUP_BYTES:
            self._flush()
        self.samples += success

    def _flush(self) -> None:
        table = self.schema.table(self.rows)
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.path, table.schema, compression=self._compression(table.schema))
        self.writer.write_table(table)
        self.sizes_written.update(row.get("shard_size") for row in self.rows)
        self.rows = []
        self.buffered_bytes = 0

    def _compression(self, schema: pa.Schema) -> dict[str, str]:
        # Payloads are mostly compressed media already: zstd only on the metadata columns.
        payloads = set(self.schema.payload_columns)
        return {name: ("none" if name in payloads else "zstd") for name in schema.names}

    def finish(self, shard_size: int) -> int:
        """Write what is left; `shard_size` is the shard's final row count."""
        for row in self.rows:
            row["shard_size"] = shard_size
        if self.rows or self.writer is None:
            self._flush()
        self.writer.close()
        if self.sizes_written - {shard_size}:
            self._rewrite_shard_size(shard_size)
        return self.samples

    def _rewrite_shard_size(self, shard_size: int) -> None:
        """Rows written before the shard's size was known (the last shard numbered in
        arrival order ends early): copy row group by row group with the right size."""
        fixed_path = self.path + ".fix"
        source = pq.ParquetFile(self.path)
        with pq.ParquetWriter(fixed_path, source.schema_arrow,
                              compression=self._compression(source.schema_arrow)) as writer:
            for index in range(source.num_row_groups):
                group = source.read_row_group(index, use_threads=False)
                column = group.schema.get_field_index("shard_size")
                group = group.set_column(column, "shard_size", pa.array([shard_size] * group.num_rows, pa.int64()))
                writer.write_table(group)
        source.close()
        os.replace(fixed_path, self.path)

    def abandon(self) -> None:
        if self.writer is not None:
            self.writer.close()
