"""The extras and programs a2d-subsample's options need, checked where the options are made
(a missing Pillow, ffmpeg or model extra, an unknown model or model option, is said once,
before any work, not by every worker)."""

from . import SubsampleOptions


def tools_checked(options: SubsampleOptions) -> SubsampleOptions:
    if options.image is not None:
        from .image import require_pillow

        require_pillow()
    if options.video is not None:
        from .video import video_transform

        video_transform(options.video)  # finds ffmpeg and ffprobe, and the encoders asked for
    if options.models is not None:
        from .models import load_models

        load_models(options.models)  # imports each model and checks its options (weights load when used)
    return options
