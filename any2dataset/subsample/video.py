"""Audio and video, with video2dataset's option names, done by ffmpeg and ffprobe.

ffmpeg and ffprobe run as subprocesses (found on PATH when the transform is made) on
temporary files, since containers such as mp4 need seekable input and output. Every call
has a time limit and none reads the network. For each record with an audio or video
payload, in this order:

- **Probe**: ffprobe reads the payload: its streams decide what is video (a cover picture in
  an mp3 is not) and its duration places the clips. With `probe`, the record gets
  `duration` (seconds), `width` and `height` (video only) and `video_metadata` (format,
  duration, bit_rate and one object per stream with always the same keys, null where they do
  not apply) describing the media payload the record carries, after the other transforms.
- **Cuts** (`detect_cuts`, `cut_threshold`, `min_scene_length`, `min_scene_frames`,
  `cut_mode`, `cut_framerates`; see cuts.py): a video gets `cuts`, its scenes as frame ranges,
  as video2dataset's CutDetectionSubsampler gives them: {"cuts_original_fps": [[0, 25],
  [25, 65], ...], "original_fps": 25.0}. Media without a video stream get none.
- **Clips** (`clip_length`, `use_clips`, `use_cuts`): one record per clip, keyed
  `{key}_{i:05d}` (i from 0 in clip order), with `source_key`, `clip_start`, `clip_end`
  (seconds in the source) and `clip_count` (how many clips the source gave, so a writer can
  tell when a source is done); the other fields are copied, except `clips`. `use_clips` takes
  the spans of the record's `clips` field ([[start, end], ...], in seconds or
  "HH:MM:SS.mmm"); a record without one is not cut. `use_cuts` takes the scenes found by cut
  detection instead (frames / original_fps, as video2dataset's cuts_are_clips); audio without
  video is not cut. `clip_length` cuts each span (or the whole media) into windows of that
  many seconds, the last one shorter. Clips are clamped to the media's duration and dropped when
  not longer than `min_clip_length` (video2dataset's min_length: a clip of exactly that length
  goes too), and always when under 10 ms; a record left without clips
  fails with error_kind `rejected`, and one that cannot be cut fails whole (one failure
  record under its own key, no clips). Video clips are re-encoded, so they start and end on the
  requested frames (stream copy would start them at the keyframe before, often seconds off).
  Audio-only clips are re-encoded when lossless (pcm, flac: exact at no loss) or transcoded
  anyway; lossy audio (mp3, aac, vorbis, opus) is stream-copied, exact to one packet (some
  20-60 ms, every audio packet being a sync point), to spare a second lossy encoding.
- **Video** (`video_size`, `video_resize_mode`, `video_fps`; also any clip or audio change
  of a media that has video): re-encoded to H.264 (yuv420p, CRF 23) with AAC audio in mp4,
  so the payload becomes `mp4`. Resize modes: scale (shorter side to video_size, aspect
  kept), crop (then the centre video_size square), pad (longer side to video_size, then
  padded with black to a square). Smaller videos are scaled up too, as in video2dataset.
  Dimensions are rounded to even numbers, as H.264 needs; rotated phone videos are turned
  upright first. Records get `width`, `height`,
  `original_width` and `original_height`.
- **Audio** (`audio_format`, `audio_rate`, `audio_channels`): audio payloads are
  re-encoded (to audio_format, else to their own format). With `audio_format`, a video's
  audio track becomes an audio payload: it replaces the video unless `video_size` or
  `video_fps` is given, in which case the record carries both (video2dataset's
  encode_formats {"video": "mp4", "audio": "m4a"}). `audio_rate` and `audio_channels` also
  apply to the audio track of a re-encoded video. A video without sound fails with
  `rejected` when its audio track is all that was asked for.
- **Thumbnails** (`thumbnails` N): N JPEG frames evenly spaced from the start of the
  (clipped, resized) video, at times i * duration / N: the first as `jpg`, the others as
  `1.jpg` ... `{N-1}.jpg` (webdataset decodes them by their last extension). Media without
  a video stream get none.

The payload that is replaced goes, the others stay; `mime` and `size` follow the media
payload. Records that are not successes, or that carry no audio or video, pass through.
Media that ffmpeg cannot read fail with `decode_error`, calls over the time limit with
`timeout`, other ffmpeg errors with `other`: status failed_to_subsample, and the last line
ffmpeg wrote as error_message. Nothing here raises for bad media.
"""

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import orjson

from .. import record as rec
from ..errors import MissingTool, UsageProblem
from ..filetypes import AUDIO_MIMES, MEDIA_MIMES, NOT_MEDIA, is_media
from . import cuts as scene_cuts

RESIZE_MODES = ("scale", "crop", "pad")
# audio_format -> ffmpeg encoder; the payload takes the format's name as its extension
AUDIO_ENCODERS = {"flac": "flac", "mp3": "libmp3lame", "wav": "pcm_s16le", "ogg": "libvorbis", "opus": "libopus",
                  "m4a": "aac", "aac": "aac"}
# audio_format -> (payload extension, ffmpeg encoder, mime)
AUDIO_FORMATS = {name: (name, encoder, AUDIO_MIMES[name]) for name, encoder in AUDIO_ENCODERS.items()}
VIDEO_ENCODER_ARGS = ("-preset", "fast", "-crf", "23", "-pix_fmt", "yuv420p")
LOSSLESS_CODECS = frozenset({"flac", "alac", "wavpack", "tta"})  # their encoders have the codec's name
JPEG_QUALITY = "2"  # ffmpeg's -q:v for mjpeg: 2 (best) .. 31
MIN_CLIP = 0.01  # seconds: shorter windows (float leftovers) are never clips
MESSAGE_LENGTH = 200
INSTALL_HINT = ("install it with apt-get install ffmpeg (Debian, Ubuntu), brew install ffmpeg (macOS) "
                "or conda install -c conda-forge ffmpeg")
# ffmpeg's stderr lines that say the input is unreadable rather than that something else failed
_DECODE_MARKERS = ("invalid data", "moov atom not found", "could not find codec parameters", "error while decoding",
                   "end of file", "header missing", "truncat", "corrupt")
_GENERIC_LINES = ("Conversion failed!", "Error initializing output stream", "Exiting normally",
                  "Error while filtering", "Error opening output files")


@dataclass
class VideoOptions:
    video_size: int | None = None
    video_resize_mode: str = "scale"  # scale | crop | pad
    video_fps: float | None = None
    audio_format: str | None = None  # flac, mp3, wav, ogg (vorbis), opus, m4a, aac
    audio_rate: int | None = None
    audio_channels: int | None = None
    probe: bool = False
    thumbnails: int = 0
    clip_length: float | None = None
    use_clips: bool = False
    min_clip_length: float = 0.0
    timeout: float = 120.0  # seconds, for each ffmpeg or ffprobe call
    keep_video: bool = False  # with audio_format: the video stays beside its audio track
    clip_windows: str = "all"  # all | first: the windows of clip_length kept from each span
    non_media: str = "keep"  # keep | fail: what becomes of a payload that is neither audio nor video
    detect_cuts: bool = False  # give videos a `cuts` field (scenes as frame ranges)
    cut_threshold: float = 0.3  # ffmpeg's scene score (0-1) from which a frame starts a new scene
    min_scene_length: float = 0.5  # seconds: a cut closer than this to the previous one (or the start) is dropped
    min_scene_frames: int = 0  # the same in frames (video2dataset's min_scene_len); the longer one holds
    cut_mode: str = "all"  # all | longest: every scene, or only the longest (video2dataset's cut_detection_mode)
    cut_framerates: tuple[float, ...] = ()  # also detect at these frame rates: cuts_{fps} (video2dataset's framerates)
    use_cuts: bool = False  # clip videos at the detected scenes (implies detect_cuts)

    def __post_init__(self):
        if self.video_resize_mode not in RESIZE_MODES:
            raise UsageProblem(f"unknown video resize mode {self.video_resize_mode!r} "
                               f"(one of {', '.join(RESIZE_MODES)})")
        if self.audio_format is not None and self.audio_format not in AUDIO_FORMATS:
            raise UsageProblem(f"unknown audio format {self.audio_format!r} (one of {', '.join(AUDIO_FORMATS)})")
        for name in ("video_size", "video_fps", "audio_rate", "audio_channels", "clip_length", "timeout"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise UsageProblem(f"{name.replace('_', ' ')} must be positive, got {value}")
        if self.non_media not in ("keep", "fail"):
            raise UsageProblem(f"unknown non-media policy {self.non_media!r} (one of keep, fail)")
        if self.clip_windows not in ("all", "first"):
            raise UsageProblem(f"clip windows must be all or first, not {self.clip_windows!r}")
        if self.thumbnails < 0 or self.min_clip_length < 0:
            raise UsageProblem("thumbnails and min clip length may not be negative")
        self._check_cuts()

    def _check_cuts(self) -> None:
        if self.use_cuts:
            self.detect_cuts = True
            if self.use_clips:
                raise UsageProblem("clip at the clips field or at the detected cuts, not both")
        if not 0 < self.cut_threshold <= 1:
            raise UsageProblem(f"cut threshold is a scene score between 0 and 1, got {self.cut_threshold}")
        if self.min_scene_length < 0 or self.min_scene_frames < 0:
            raise UsageProblem("min scene length may not be negative")
        if self.cut_mode not in scene_cuts.CUT_MODES:
            raise UsageProblem(f"cut mode must be all or longest, not {self.cut_mode!r}")
        self.cut_framerates = tuple(self.cut_framerates)
        if any(not fps > 0 for fps in self.cut_framerates):
            raise UsageProblem(f"cut frame rates must be positive, got {list(self.cut_framerates)}")

    @property
    def enabled(self) -> bool:
        """Whether any option asks for work (else the transform passes everything through)."""
        return bool(self.video_size or self.video_fps or self.audio_format or self.audio_rate or self.audio_channels
                    or self.probe or self.thumbnails or self.clip_length or self.use_clips or self.non_media == "fail"
                    or self.detect_cuts)

    @property
    def changes_video(self) -> bool:
        return bool(self.video_size or self.video_fps)

    @property
    def changes_audio(self) -> bool:
        return bool(self.audio_format or self.audio_rate or self.audio_channels)


class _Failed(Exception):
    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind
        self.message = message


def media_payload(record: dict) -> str | None:
    """The extension of the record's audio or video payload, if it has one."""
    files = record.get(rec.FILES) or {}
    for extension in files:
        if is_media(extension):
            return extension
    mime = record.get("mime") or ""
    if mime.startswith(("video/", "audio/")):
        for extension in files:
            if extension.lower() not in NOT_MEDIA:
                return extension
    return None


def _windows(spans: list[tuple[float, float]], length: float, *, first_only: bool) -> list[tuple[float, float]]:
    """Each span cut into windows of `length` seconds (the last may be shorter); only the first of
    each with `first_only`. A tail shorter than MIN_CLIP starts no window."""
    windows = []
    for start, end in spans:
        count = 0
        while start + count * length < end - MIN_CLIP:
            windows.append((start + count * length, min(end, start + (count + 1) * length)))
            count += 1
            if first_only:
                break
    return windows


def _kept_spans(spans: list[tuple[float, float]], duration: float | None,
                min_length: float) -> list[tuple[float, float]]:
    """Spans clamped to the media, without those too short to encode or under --min-clip-length."""
    kept = []
    for start, end in spans:
        start = max(0.0, start)
        if duration is not None:
            end = min(end, duration)
        length = end - start
        if length >= MIN_CLIP - 1e-9 and length > min_length + 1e-9:
            kept.append((round(start, 6), round(end, 6)))
    return kept


def _collect_outputs(result: dict, outputs: list[tuple[str, str, str]]) -> None:
    """Read ffmpeg's output files into the result; the first one is the record's main payload."""
    for out_extension, path, mime in outputs:
        result["files"][out_extension] = _read_output(path)
        if result["main"] is None:
            result.update(main=out_extension, mime=mime, path=path)


def video_transform(options: VideoOptions) -> Callable[[dict], list[dict]]:
    """One record in, a list of records out (see the module's docstring). Raises MissingTool
    now if ffmpeg is needed and not found. The result can be pickled (for worker processes)."""
    return VideoTransform(options)


class VideoTransform:
    def __init__(self, options: VideoOptions):
        self.options = options
        self.ffmpeg = self.ffprobe = None
        self.video_encoder = "libx264"
        if not options.enabled:
            return
        self.ffmpeg, self.ffprobe = shutil.which("ffmpeg"), shutil.which("ffprobe")
        if not self.ffmpeg or not self.ffprobe:
            missing = " and ".join(name for name, path in (("ffmpeg", self.ffmpeg), ("ffprobe", self.ffprobe))
                                   if not path)
            raise MissingTool(f"audio/video subsampling needs {missing}, not found on PATH: {INSTALL_HINT}")
        encoders = self._encoders()
        if encoders and "libx264" not in encoders:
            self.video_encoder = "mpeg4"  # every ffmpeg has it; H.264 needs a GPL build
        if encoders and options.audio_format:
            encoder = AUDIO_FORMATS[options.audio_format][1]
            if encoder not in encoders:
                raise MissingTool(f"this ffmpeg ({self.ffmpeg}) cannot write {options.audio_format}: it has no "
                                  f"{encoder} encoder; use another --audio-format or another ffmpeg build")

    def _encoders(self) -> set[str]:
        try:
            listing = subprocess.run([self.ffmpeg, "-hide_banner", "-encoders"], capture_output=True, timeout=60,
                                     stdin=subprocess.DEVNULL).stdout.decode("utf-8", "replace")
        except (OSError, subprocess.SubprocessError):
            return set()  # unknown: let the calls themselves say what is wrong
        return {parts[1] for parts in map(str.split, listing.splitlines()) if len(parts) > 1 and len(parts[0]) == 6}

    # --- the transform ---------------------------------------------------------------

    def __call__(self, record: dict) -> list[dict]:
        if not self.options.enabled or record.get("status") not in (None, "success"):
            return [record]
        extension = media_payload(record)
        if extension is None:
            files = record.get(rec.FILES)
            if files and self.options.non_media == "fail":
                what = ", ".join(sorted(files)) + (f" ({record['mime']})" if record.get("mime") else "")
                return [rec.failure(record, "failed_to_subsample", "decode_error",
                                    f"not audio or video: {what} (--non-media keep passes other files through)")]
            return [record]
        payload = record[rec.FILES][extension]
        if isinstance(payload, str):
            payload = rec.decode_payloads(record)[rec.FILES][extension]
        try:
            with tempfile.TemporaryDirectory(prefix="a2d-video-") as folder:
                return self._transform(record, extension, payload, folder)
        except _Failed as failure:
            return [rec.failure(record, "failed_to_subsample", failure.kind, failure.message)]

    def _transform(self, record: dict, extension: str, payload: bytes, folder: str) -> list[dict]:
        options = self.options
        source = os.path.join(folder, "in." + (extension if _safe_extension(extension) else "bin"))
        with open(source, "wb") as file:
            file.write(payload)
        media = Media(self._probe(source))
        if media.video is None and media.audio is None:
            raise _Failed("decode_error", "no audio or video stream")
        if self.options.detect_cuts and media.video is not None:
            record["cuts"] = self._cuts(source, media)
        spans = self._spans(record, media)
        if spans is not None and not record.get("key"):
            raise _Failed("other", "clipping needs keys: run a2d-shard first")
        if spans == []:
            raise _Failed("rejected", f"no clip longer than {max(options.min_clip_length, MIN_CLIP):g} s "
                                      f"in {media.duration or 0:.3f} s of media")
        if spans is None:
            outputs = self._render(source, extension, media, None, "0")
            return [self._finish(record, extension, media, outputs)]
        results = []
        key = record["key"]
        base = {name: value for name, value in record.items() if name not in ("clips", rec.FILES)}
        for index, (start, end) in enumerate(spans):
            clip = dict(base, key=f"{key}_{index:05d}", source_key=key, clip_start=start, clip_end=end,
                        clip_count=len(spans))
            clip[rec.FILES] = dict(record[rec.FILES])
            outputs = self._render(source, extension, media, (start, end), str(index))
            results.append(self._finish(clip, extension, media, outputs))
        return results

    def _spans(self, record: dict, media: "Media") -> list[tuple[float, float]] | None:
        """Clips as (start, end) in seconds, clamped and filtered; None: do not cut."""
        options = self.options
        spans = None
        if options.use_cuts and record.get("cuts") is not None and media.video is not None:
            spans = scene_cuts.clip_spans(record["cuts"])
        elif options.use_clips and record.get("clips") is not None:
            spans = [_span(clip) for clip in record["clips"]]
        elif options.clip_length:
            if media.duration is None:
                raise _Failed("other", "cannot cut into windows: the media's duration is unknown")
            spans = [(0.0, media.duration)]
        if spans is None:
            return None
        if options.clip_length:
            spans = _windows(spans, options.clip_length, first_only=options.clip_windows == "first")
        return _kept_spans(spans, media.duration, options.min_clip_length)

    def _cuts(self, source: str, media: "Media") -> dict:
        """The video's scenes (cuts.py), detected at its own frame rate and at each of cut_framerates."""
        options = self.options
        stream = media.video["index"]
        scores = scene_cuts.parse_scores(self._run(scene_cuts.scan_command(self.ffmpeg, source, stream), "ffmpeg"))
        if not scores:
            raise _Failed("decode_error", "no video frame to detect cuts in")
        fps = _ratio(media.video.get("avg_frame_rate")) or _ratio(media.video.get("r_frame_rate"))
        fps = float(fps) if fps else len(scores) / (media.duration or len(scores))
        least = scene_cuts.min_frames(fps, options.min_scene_length, options.min_scene_frames)
        found = scene_cuts.cut_frames([score for _, score in scores], options.cut_threshold, least)
        cuts = {"cuts_original_fps": scene_cuts.scenes(found, len(scores), options.cut_mode), "original_fps": fps}
        for rate in options.cut_framerates:
            command = scene_cuts.scan_command(self.ffmpeg, source, stream, rate)
            sampled = scene_cuts.parse_scores(self._run(command, "ffmpeg"))
            # counted in frames of the original video, as video2dataset's frame_skip counts them
            frames = scene_cuts.original_frames([time for time, _ in sampled], fps)
            kept = scene_cuts.cut_frames([score for _, score in sampled], options.cut_threshold, least, frames)
            cuts[scene_cuts.framerate_key(rate)] = scene_cuts.scenes(kept, len(scores), options.cut_mode)
        return cuts

    def _render(self, source: str, extension: str, media: "Media", span: tuple[float, float] | None,
                tag: str) -> dict:
        """Run ffmpeg for one output record: {"files": {ext: bytes}, "main": ext, "mime": ..., plus sizes}."""
        folder = os.path.dirname(source)
        video_out, audio_out = self._outputs_wanted(media, span)
        result = self._timing(source, media, span, video_out)
        command = [self.ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
        if span is not None:
            command += ["-ss", _seconds(span[0]), "-t", _seconds(span[1] - span[0])]
        command += ["-i", source]
        outputs = []
        if video_out:
            args, output, width, height = self._video_output(media, folder, tag)
            command += args
            outputs.append(output)
            result.update(width=width, height=height)
        if audio_out:
            args, output = self._audio_output(extension, media, span, folder, tag)
            command += args
            outputs.append(output)
        if outputs:
            self._run(command, "ffmpeg")
            _collect_outputs(result, outputs)
            if video_out:
                result.update(source=outputs[0][1], offset=0.0, stream="v:0")
        if self.options.thumbnails and media.video is not None:
            result["files"].update(self._thumbnails(media, result, tag))
        return result

    def _outputs_wanted(self, media: "Media", span: tuple[float, float] | None) -> tuple[bool, bool]:
        """Whether ffmpeg writes a video and an audio output for this record."""
        options = self.options
        has_video = media.video is not None
        has_audio = media.audio is not None
        # audio_format turns a video into its audio track, unless the video is asked for too;
        # keep_video keeps it as it came unless it must change (a clip, a video option)
        video_out = has_video and (options.changes_video or (span is not None and (
            not options.audio_format or options.keep_video)) or (not options.audio_format and options.changes_audio))
        audio_out = has_audio and (bool(options.audio_format) or (not has_video and (
            options.changes_audio or span is not None)))
        if has_video and not video_out and options.audio_format and not has_audio:
            raise _Failed("rejected", f"no audio stream to write as {options.audio_format}")
        return video_out, audio_out

    def _timing(self, source: str, media: "Media", span: tuple[float, float] | None, video_out: bool) -> dict:
        """The result so far: where thumbnails come from (the input, or the re-encoded video once
        there is one) and the stretch of it this record covers."""
        has_video = media.video is not None
        result = {"files": {}, "main": None, "source": source, "offset": 0.0, "length": media.duration,
                  "stream": media.video["index"] if has_video else None,
                  "keeps_source": self.options.keep_video and has_video and not video_out}
        if span is not None:
            result["offset"], result["length"] = span[0], span[1] - span[0]
        video_end = _number(media.video.get("duration")) if has_video else None
        if video_end is not None and result["length"] is not None:  # the picture may stop before the sound
            result["length"] = max(0.0, min(result["length"], video_end - result["offset"]))
        return result

    def _video_output(self, media: "Media", folder: str, tag: str) -> tuple[list[str], tuple, int, int]:
        """ffmpeg's arguments for the mp4 output (with the audio track, if any), the output and its size."""
        width, height, filters = _video_filters(media, self.options)
        path = os.path.join(folder, f"out{tag}.mp4")
        args = ["-map", f"0:{media.video['index']}", "-vf", ",".join(filters), "-c:v", self.video_encoder]
        args += list(VIDEO_ENCODER_ARGS) if self.video_encoder == "libx264" else ["-q:v", "3", "-pix_fmt", "yuv420p"]
        if media.audio is not None:
            args += ["-map", f"0:{media.audio['index']}", "-c:a", "aac", *self._audio_args()]
        args += ["-movflags", "+faststart", path]
        return args, ("mp4", path, "video/mp4"), width, height

    def _audio_output(self, extension: str, media: "Media", span: tuple[float, float] | None, folder: str,
                      tag: str) -> tuple[list[str], tuple]:
        """ffmpeg's arguments for the audio-only output, and the output (extension, path, mime)."""
        options = self.options
        if options.audio_format:
            out_extension, encoder, mime = AUDIO_FORMATS[options.audio_format]
        elif extension.lower() in MEDIA_MIMES:
            out_extension = extension
            encoder = None if not options.changes_audio else _own_encoder(extension.lower())
            mime = MEDIA_MIMES[extension.lower()]
        else:  # a payload named by its mime only: ffmpeg cannot tell the container from the name
            out_extension, encoder, mime = AUDIO_FORMATS["flac"]
        path = os.path.join(folder, f"out{tag}.{out_extension}")
        args = ["-map", f"0:{media.audio['index']}", "-vn"]
        if encoder is None and not options.changes_audio:
            codec = media.audio.get("codec_name") or ""
            lossless = codec.startswith("pcm_") or codec in LOSSLESS_CODECS
            # a cut is exact when re-encoded, which costs nothing for lossless audio; a lossy
            # stream is copied (a re-encode would lose quality), to the packet (20-60 ms)
            args += ["-c:a", codec if lossless and span is not None else "copy"]
        else:
            args += (["-c:a", encoder] if encoder else []) + self._audio_args()
        args.append(path)
        return args, (out_extension, path, mime)

    def _audio_args(self) -> list[str]:
        args = []
        if self.options.audio_rate:
            args += ["-ar", str(self.options.audio_rate)]
        if self.options.audio_channels:
            args += ["-ac", str(self.options.audio_channels)]
        return args

    def _thumbnails(self, media: "Media", result: dict, tag: str) -> dict:
        """N frames at i * length / N from the (possibly re-encoded) video, in one ffmpeg call."""
        count = self.options.thumbnails
        length = result["length"] or 0.0
        command = [self.ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
        for index in range(count):
            command += ["-ss", _seconds(result["offset"] + index * length / count), "-i", result["source"]]
        folder = os.path.dirname(result["source"])
        paths = []
        for index in range(count):
            path = os.path.join(folder, f"thumb{tag}_{index}.jpg")
            command += ["-map", f"{index}:{result['stream']}", "-frames:v", "1", "-q:v", JPEG_QUALITY,
                        "-update", "1", path]
            paths.append(path)
        self._run(command, "ffmpeg")
        thumbnails = {}
        for index, path in enumerate(paths):
            if not os.path.exists(path) or os.path.getsize(path) == 0:
                raise _Failed("decode_error", f"no video frame at {index * length / count:.3f} s for thumbnail {index}")
            with open(path, "rb") as file:
                thumbnails["jpg" if index == 0 else f"{index}.jpg"] = file.read()
        return thumbnails

    def _finish(self, record: dict, extension: str, media: "Media", result: dict) -> dict:
        files = record[rec.FILES]
        # the media payload is replaced, unless the video stays beside a new audio track
        replaced = result["main"] is not None and not result["keeps_source"]
        if replaced:
            del files[extension]
            if record.get("size") is not None:
                record.setdefault("original_size", record["size"])  # as downloaded (video2dataset counts it)
        files.update(result["files"])
        if replaced:
            record["mime"] = result["mime"]
            record["size"] = len(files[result["main"]])
        if "width" in result:
            record["original_width"], record["original_height"] = media.width, media.height
            record["width"], record["height"] = result["width"], result["height"]
        if self.options.probe:
            described = Media(self._probe(result["path"])) if replaced else media
            record["duration"] = described.duration
            if described.video is not None:
                record["width"], record["height"] = described.width, described.height
            record["video_metadata"] = described.metadata()
        return record

    # --- subprocesses ----------------------------------------------------------------

    def _probe(self, path: str) -> dict:
        command = [self.ffprobe, "-hide_banner", "-loglevel", "error", "-print_format", "json",
                   "-show_format", "-show_streams", path]
        output = self._run(command, "ffprobe", decode_error=True)
        try:
            return orjson.loads(output)
        except orjson.JSONDecodeError:
            raise _Failed("decode_error", "ffprobe printed no metadata") from None

    def _run(self, command: list[str], name: str, decode_error: bool = False) -> bytes:
        try:
            done = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, timeout=self.options.timeout)
        except subprocess.TimeoutExpired:
            raise _Failed("timeout", f"{name} took longer than {self.options.timeout:g} s") from None
        except OSError as error:
            raise _Failed("other", f"cannot run {name}: {error.strerror or error}") from None
        if done.returncode != 0:
            message = _last_line(done.stderr, os.path.dirname(command[-1]))
            lowered = message.lower()
            kind = "decode_error" if decode_error or any(marker in lowered for marker in _DECODE_MARKERS) else "other"
            raise _Failed(kind, f"{name}: {message}"[:MESSAGE_LENGTH] if message else f"{name} failed "
                                f"(exit status {done.returncode})")
        return done.stdout


class Media:
    """What ffprobe says about a file, and the few numbers the transform needs."""

    def __init__(self, probe: dict):
        self.probe = probe
        streams = probe.get("streams") or []
        self.video = next((s for s in streams if s.get("codec_type") == "video"
                           and not (s.get("disposition") or {}).get("attached_pic")), None)
        self.audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
        form = probe.get("format") or {}
        duration = _number(form.get("duration"))
        if duration is None:
            durations = [_number(s.get("duration")) for s in (self.video, self.audio) if s]
            duration = max((d for d in durations if d is not None), default=None)
        self.duration = duration
        self.width = self.height = None
        if self.video is not None and self.video.get("width") and self.video.get("height"):
            width, height = int(self.video["width"]), int(self.video["height"])
            aspect = _ratio(self.video.get("sample_aspect_ratio"))
            if aspect and aspect != 1:  # anamorphic: the picture is shown wider or narrower
                width = max(1, round(width * aspect))
            if abs(_rotation(self.video)) % 180 == 90:
                width, height = height, width
            self.width, self.height = width, height

    def metadata(self) -> dict:
        form = self.probe.get("format") or {}
        return {
            "format": form.get("format_name"),
            "duration": self.duration,
            "bit_rate": _integer(form.get("bit_rate")),
            "streams": [_stream_metadata(stream) for stream in self.probe.get("streams") or []],
        }


def _stream_metadata(stream: dict) -> dict:
    video = stream.get("codec_type") == "video"
    audio = stream.get("codec_type") == "audio"
    fps = _ratio(stream.get("avg_frame_rate")) or _ratio(stream.get("r_frame_rate"))
    return {
        "index": stream.get("index"),
        "codec_type": stream.get("codec_type"),
        "codec_name": stream.get("codec_name"),
        "profile": stream.get("profile"),
        "duration": _number(stream.get("duration")),
        "bit_rate": _integer(stream.get("bit_rate")),
        "width": _integer(stream.get("width")) if video else None,
        "height": _integer(stream.get("height")) if video else None,
        "pix_fmt": stream.get("pix_fmt") if video else None,
        "fps": round(float(fps), 3) if video and fps else None,
        "nb_frames": _integer(stream.get("nb_frames")) if video else None,
        "rotation": _rotation(stream) if video else None,
        "sample_rate": _integer(stream.get("sample_rate")) if audio else None,
        "channels": _integer(stream.get("channels")) if audio else None,
        "channel_layout": stream.get("channel_layout") if audio else None,
        "language": (stream.get("tags") or {}).get("language"),
    }


def _video_filters(media: Media, options: VideoOptions) -> tuple[int, int, list[str]]:
    """The output size and the -vf chain (fps first: fewer frames to scale)."""
    filters = [f"fps={options.video_fps:g}"] if options.video_fps else []
    width, height = media.width or 2, media.height or 2
    size = options.video_size
    if size is None:
        out_width, out_height = _even_down(width), _even_down(height)
        filters.append(f"scale={out_width}:{out_height}")
    elif options.video_resize_mode == "pad":
        side = _even(size)
        scale = side / max(width, height)
        scaled = (min(side, _even(width * scale)), min(side, _even(height * scale)))
        filters += [f"scale={scaled[0]}:{scaled[1]}", f"pad={side}:{side}:{(side - scaled[0]) // 2}:"
                                                          f"{(side - scaled[1]) // 2}:black"]
        out_width = out_height = side
    else:
        side = _even(size)
        scale = side / min(width, height)
        scaled = (max(side, _even(width * scale)), max(side, _even(height * scale)))
        filters.append(f"scale={scaled[0]}:{scaled[1]}")
        out_width, out_height = scaled
        if options.video_resize_mode == "crop":
            filters.append(f"crop={side}:{side}")
            out_width = out_height = side
    filters.append("setsar=1")
    return out_width, out_height, filters


def _even(value: float) -> int:
    """The nearest even integer, at least 2."""
    return max(2, int(value / 2 + 0.5) * 2)


def _even_down(value: int) -> int:
    return max(2, value - value % 2)


def _own_encoder(extension: str) -> str | None:
    """The encoder that rewrites an audio payload in its own format (None: ffmpeg's default)."""
    known = AUDIO_FORMATS.get(extension)
    return known[1] if known else None


def _span(clip) -> tuple[float, float]:
    if not isinstance(clip, (list, tuple)) or len(clip) != 2:
        raise _Failed("other", f"invalid clips field: expected [start, end] pairs, got {_short(clip)}")
    start, end = (_timestamp(value) for value in clip)
    return start, end


def _timestamp(value) -> float:
    """Seconds from a number or "[[HH:]MM:]SS[.mmm]" (video2dataset's clip timestamps)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and re.fullmatch(r"(\d+:){0,2}\d+(\.\d*)?", value.strip()):
        seconds = 0.0
        for part in value.strip().split(":"):
            seconds = seconds * 60 + float(part)
        return seconds
    raise _Failed("other", f"invalid clips field: {_short(value)} is not a time in seconds or HH:MM:SS.mmm")


def _short(value) -> str:
    text = orjson.dumps(value, default=str).decode()
    return text if len(text) <= 40 else text[:37] + "..."


def _seconds(value: float) -> str:
    return f"{max(0.0, value):.6f}"


def _number(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and number not in (float("inf"), float("-inf")) else None


def _integer(value) -> int | None:
    number = _number(value)
    return int(number) if number is not None else None


def _ratio(value) -> Fraction | None:
    """'30000/1001' or '4:3' as a fraction; None for 0/0, N/A and the like."""
    if not isinstance(value, str):
        return None
    try:
        numerator, denominator = (int(part) for part in re.split(r"[/:]", value, maxsplit=1))
    except ValueError:
        return None
    return Fraction(numerator, denominator) if numerator > 0 and denominator > 0 else None


def _rotation(stream: dict) -> int:
    for side_data in stream.get("side_data_list") or []:
        if "rotation" in side_data:
            return int(_number(side_data["rotation"]) or 0)
    return int(_number((stream.get("tags") or {}).get("rotate")) or 0)


def _safe_extension(extension: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9]{1,8}", extension))


def _read_output(path: str) -> bytes:
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        raise _Failed("decode_error", "ffmpeg wrote nothing (no decodable frames in this span?)")
    with open(path, "rb") as file:
        return file.read()


def _last_line(stderr: bytes, folder: str) -> str:
    """The last line ffmpeg wrote that says something, without our temporary folder or the
    addresses in "[libx264 @ 0x55d1...]"; generic summaries give way to the line before them."""
    lines = [line.strip() for line in stderr.decode("utf-8", "replace").splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        return ""
    specific = [line for line in lines if not line.startswith(_GENERIC_LINES)]
    line = (specific or lines)[-1]
    line = re.sub(r"^\[([^\]@]+?) @ 0x[0-9a-f]+\] ", r"\1: ", line)
    line = line.replace(folder + os.sep, "") if folder else line
    return line if len(line) <= MESSAGE_LENGTH else line[: MESSAGE_LENGTH - 3] + "..."
