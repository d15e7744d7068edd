"""TFRecord shards of tf.train.Example records, written without TensorFlow (the framing
and the encoding are in tfrecord_codec.py).

Each sample is one Example holding `key`, one bytes feature per payload (named by
extension), `txt` for the caption and every metadata field.
"""

from .. import record as rec
from ..tfrecord_codec import crc32c_module, example, frame
from .background import BackgroundWriter, write_all
from .sink import SampleSink, SinkSettings


def sample_features(record: dict, none_as_empty: bool = False) -> dict:
    """The features of a sample; a null field is left out, or with none_as_empty an empty bytes
    feature, as img2dataset and video2dataset write it."""
    features = rec.metadata(record)
    features.update(record.get(rec.FILES) or {})
    if record.get("caption") is not None or (none_as_empty and "caption" in record):
        features["txt"] = record.get("caption") or ""
    if none_as_empty:
        features = {name: "" if value is None else value for name, value in features.items()}
    return features


class TFRecordSink(SampleSink):
    suffixes = (".tfrecord", ".parquet")

    def __init__(self, temp_path, settings: SinkSettings):
        super().__init__(temp_path, settings)
        self.crc32c = crc32c_module()
        self.file = open(temp_path(".tfrecord"), "wb", buffering=0)
        self.io = BackgroundWriter()
        self.none_as_empty = settings.schema.like is not None  # as the tool we write like

    def add_sample(self, record: dict) -> None:
        features = sample_features(record, self.none_as_empty)
        self.io.submit(write_all, self.file.fileno(), frame(self.crc32c, example(features)))

    def close(self) -> None:
        if not self.file.closed:
            try:
                self.io.close()
            finally:
                self.file.close()
