"""parquet and Arrow IPC (Feather v2) files, read a batch at a time with bounded memory.
Only the columns asked for are read."""

import io

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from ..errors import BadInput
from .table import Table

BATCH_ROWS = 16384  # small batches keep the Python objects of one batch small


def seekable(stream):
    """Parquet and Arrow files are read from their end: buffer a pipe or compressed stream."""
    try:
        if stream.seekable():
            return stream
    except (AttributeError, OSError, ValueError):
        pass
    return io.BytesIO(stream.read())


def _rows(batches):
    """Rows numbered from 1 (a parquet or Arrow file has no lines)."""
    number = 0
    for batch in batches:
        columns = [column.to_pylist() for column in batch.columns]
        first = number + 1  # numbering goes on from the previous batch
        for number, values in enumerate(zip(*columns), first):
            yield number, values, None


def parquet_table(stream) -> Table:
    try:
        # No pre-buffering and one thread: measured to keep peak memory near one batch.
        parquet = pq.ParquetFile(seekable(stream), pre_buffer=False)
    except (pa.ArrowInvalid, OSError) as error:
        raise BadInput(f"not a parquet file ({error})") from None

    def rows(selected):
        return _rows(parquet.iter_batches(batch_size=BATCH_ROWS, columns=selected, use_threads=False))

    return Table(parquet.schema_arrow.names, rows)


def arrow_table(stream) -> Table:
    source = seekable(stream)
    try:
        reader = ipc.open_file(source)
        batches = (reader.get_batch(i) for i in range(reader.num_record_batches))
    except pa.ArrowInvalid:
        source.seek(0)
        try:
            reader = ipc.open_stream(source)
        except pa.ArrowInvalid as error:
            raise BadInput(f"not an Arrow IPC file or stream ({error})") from None
        batches = iter(reader)
    names = reader.schema.names

    def rows(selected):
        indexes = [names.index(name) for name in selected]
        return _rows(batch.select(indexes) for batch in batches)

    return Table(names, rows)
