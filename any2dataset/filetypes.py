"""File types: what a payload is, from its first bytes, its name or its media type.

The one home of magic numbers, canonical extensions, mime <-> extension and the
extension tables of images, audio and video, for every stage (read, fetch, subsample,
write). Only tables and pure functions: no I/O, nothing about HTTP.
"""

import mimetypes

# Spellings of one extension, and the name a payload takes: a file named photo.jpeg is `jpg`.
CANONICAL_EXTENSIONS = {"jpeg": "jpg", "jpe": "jpg", "tif": "tiff"}
# Spellings that only a downloaded file's type is canonicalised from (its mime's or URL's
# extension). a2d-read of a raw folder keeps them as the files are named (an x.htm stays
# `htm`): folding them in there too would change its output.
DOWNLOAD_CANONICAL_EXTENSIONS = {**CANONICAL_EXTENSIONS, "jfif": "jpg", "htm": "html", "mpga": "mp3"}

# Magic numbers of the files datasets are made of: (offset, bytes, extension, mime).
MAGIC = [
    (0, b"\xff\xd8\xff", "jpg", "image/jpeg"),
    (0, b"\x89PNG\r\n\x1a\n", "png", "image/png"),
    (0, b"GIF87a", "gif", "image/gif"),
    (0, b"GIF89a", "gif", "image/gif"),
    (0, b"BM", "bmp", "image/bmp"),
    (0, b"II*\x00", "tiff", "image/tiff"),
    (0, b"MM\x00*", "tiff", "image/tiff"),
    (0, b"%PDF-", "pdf", "application/pdf"),
    (0, b"fLaC", "flac", "audio/flac"),
    (0, b"OggS", "ogg", "audio/ogg"),
    (0, b"ID3", "mp3", "audio/mpeg"),
    (0, b"\x1a\x45\xdf\xa3", "webm", "video/webm"),
    (0, b"PK\x03\x04", "zip", "application/zip"),
    (0, b"\x1f\x8b", "gz", "application/gzip"),
]
# RIFF containers by their form type (bytes 8-12), ISO media files by their brand (bytes 8-12).
RIFF_TYPES = {b"WEBP": ("webp", "image/webp"), b"WAVE": ("wav", "audio/wav"), b"AVI ": ("avi", "video/x-msvideo")}
ISO_BRANDS = {b"avif": ("avif", "image/avif"), b"heic": ("heic", "image/heic"), b"qt  ": ("mov", "video/quicktime"),
              b"M4A ": ("m4a", "audio/mp4")}
ISO_DEFAULT = ("mp4", "video/mp4")
SNIFF_BYTES = 32  # sniff reads no further

# Media types that say nothing about the file: its bytes or name must tell.
VAGUE_MIMES = frozenset({"", "application/octet-stream", "binary/octet-stream", "application/binary",
                         "application/x-download", "application/force-download"})

IMAGE_EXTENSIONS = frozenset({"jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff", "ico", "ppm", "pgm",
                              "pbm", "jfif", "avif", "heic"})
VIDEO_MIMES = {
    "mp4": "video/mp4", "webm": "video/webm", "mkv": "video/x-matroska", "mov": "video/quicktime",
    "avi": "video/x-msvideo", "m4v": "video/mp4", "ogv": "video/ogg", "mpg": "video/mpeg", "mpeg": "video/mpeg",
    "flv": "video/x-flv", "3gp": "video/3gpp", "ts": "video/mp2t",
}
AUDIO_MIMES = {
    "wav": "audio/wav", "mp3": "audio/mpeg", "flac": "audio/flac", "ogg": "audio/ogg", "opus": "audio/opus",
    "m4a": "audio/mp4", "aac": "audio/aac", "wma": "audio/x-ms-wma", "aiff": "audio/aiff",
}
VIDEO_EXTENSIONS = tuple(VIDEO_MIMES)
AUDIO_EXTENSIONS = tuple(AUDIO_MIMES)
MEDIA_MIMES = {**VIDEO_MIMES, **AUDIO_MIMES}
# Payloads that are never the audio or video of a record whose mime says audio/video
# (a thumbnail, a caption, metadata, embeddings).
NOT_MEDIA = frozenset({"jpg", "jpeg", "png", "webp", "gif", "txt", "json", "cls", "npy", "html"})


def sniff(body: bytes) -> tuple[str, str] | None:
    """(extension, mime) from a file's first bytes, for the common dataset formats."""
    head = body[:SNIFF_BYTES]
    for offset, magic, extension, mime in MAGIC:
        if head.startswith(magic, offset):
            return extension, mime
    if head[:4] == b"RIFF" and head[8:12] in RIFF_TYPES:
        return RIFF_TYPES[head[8:12]]
    if head[4:8] == b"ftyp":
        return ISO_BRANDS.get(head[8:12], ISO_DEFAULT)
    return None


def canonical_extension(extension: str) -> str:
    """The name a payload takes for a file named with `extension`."""
    return CANONICAL_EXTENSIONS.get(extension, extension)


def download_extension(extension: str) -> str:
    """The name a downloaded payload takes for the extension its mime or URL gave."""
    return DOWNLOAD_CANONICAL_EXTENSIONS.get(extension, extension)


def mime_type(content_type: str | None) -> str:
    """The media type alone, lower case: `image/JPEG; q=1` is `image/jpeg`; none is ''."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def extension_of_mime(mime: str) -> str | None:
    """The extension (without its dot, not yet canonical) the system's tables give a media type."""
    guessed = mimetypes.guess_extension(mime, strict=False)
    return guessed[1:] if guessed else None


def mime_of_name(name: str) -> str | None:
    """The media type the system's tables give a file name or path (None if unknown)."""
    return mimetypes.guess_type(name)[0]


def is_image(extension: str) -> bool:
    return extension in IMAGE_EXTENSIONS


def is_media(extension: str) -> bool:
    """Whether the extension names audio or video (any case)."""
    return extension.lower() in MEDIA_MIMES
