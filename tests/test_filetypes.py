"""The file types module on its own: magic bytes, canonical extensions, mime <-> extension."""

import pytest

from any2dataset import filetypes


@pytest.mark.parametrize("head, expected", [
    (b"\xff\xd8\xff\xe0" + bytes(20), ("jpg", "image/jpeg")),
    (b"\x89PNG\r\n\x1a\n" + bytes(8), ("png", "image/png")),
    (b"RIFF\x00\x00\x00\x00WEBPVP8 ", ("webp", "image/webp")),
    (b"RIFF\x00\x00\x00\x00WAVEfmt ", ("wav", "audio/wav")),
    (b"\x00\x00\x00\x18ftypisom", ("mp4", "video/mp4")),  # an unknown brand: mp4
    (b"\x00\x00\x00\x18ftypM4A ", ("m4a", "audio/mp4")),
    (b"ID3\x04", ("mp3", "audio/mpeg")),
    (b"hello world", None),
    (b"", None),
])
def test_sniff(head, expected):
    assert filetypes.sniff(head) == expected


def test_sniff_reads_only_the_first_bytes():
    assert filetypes.sniff(bytes(filetypes.SNIFF_BYTES) + b"\xff\xd8\xff") is None


def test_canonical_extensions_of_names_and_of_downloads():
    assert filetypes.canonical_extension("jpeg") == filetypes.download_extension("jpeg") == "jpg"
    assert filetypes.canonical_extension("tif") == "tiff"
    # A file named x.htm keeps its name in a2d-read; a download's mime or URL extension is folded.
    for spelling, canonical in (("jfif", "jpg"), ("htm", "html"), ("mpga", "mp3")):
        assert filetypes.canonical_extension(spelling) == spelling
        assert filetypes.download_extension(spelling) == canonical
    assert filetypes.canonical_extension("png") == filetypes.download_extension("png") == "png"


def test_mime_and_extension():
    assert filetypes.mime_type("Image/JPEG; charset=x") == "image/jpeg"
    assert filetypes.mime_type(None) == ""
    assert filetypes.extension_of_mime("image/png") == "png"
    assert filetypes.extension_of_mime("application/x-no-such-type") is None
    assert filetypes.mime_of_name("a/b/photo.png") == "image/png"
    assert filetypes.mime_of_name("x.unknownext") is None
    assert "application/octet-stream" in filetypes.VAGUE_MIMES


def test_media_tables():
    assert filetypes.is_media("MP4") and filetypes.is_media("flac")
    assert not filetypes.is_media("jpg")
    assert set(filetypes.MEDIA_MIMES) == set(filetypes.VIDEO_EXTENSIONS) | set(filetypes.AUDIO_EXTENSIONS)
    assert filetypes.MEDIA_MIMES["mp3"] == "audio/mpeg"
    assert filetypes.is_image("jfif") and not filetypes.is_image("mp4")
    assert not filetypes.NOT_MEDIA & set(filetypes.MEDIA_MIMES)
