"""any2dataset: turn lists of file URLs into training datasets with small Unix filters."""

__version__ = "0.1.0"


def download(*positional, **arguments) -> dict:
    """Download a URL list into a dataset with img2dataset's arguments, by name or in its order
    (see all_in_one.py); returns the a2d-stats summary of the output folder."""
    from .all_in_one import download as run

    return run(*positional, **arguments)


def video2dataset(*positional, **arguments) -> dict:
    """Download a video list into a dataset with video2dataset's arguments and config (see
    video_all_in_one.py); returns the a2d-stats summary of the output folder."""
    from .video_all_in_one import video2dataset as run

    return run(*positional, **arguments)
