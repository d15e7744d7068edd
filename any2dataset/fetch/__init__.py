"""a2d-fetch's library: download every record's URL; failures become records, never gaps.

`fetch` and `needs_fetch` load the network engine (libcurl) on first use."""

from .options import (
    DEFAULT_DISALLOWED_DIRECTIVES,
    DEFAULT_PER_HOST,
    DEFAULT_SCHEMES,
    DEFAULT_USER_AGENT,
    DOWN_SECONDS,
    HASH_NAMES,
    RAMP_START,
    SOURCES,
    FetchOptions,
)

__all__ = ["fetch", "FetchOptions", "needs_fetch", "DEFAULT_SCHEMES", "DEFAULT_DISALLOWED_DIRECTIVES",
           "DEFAULT_PER_HOST", "DEFAULT_USER_AGENT", "DOWN_SECONDS", "HASH_NAMES", "RAMP_START", "SOURCES"]


def __getattr__(name):
    if name in ("fetch", "needs_fetch"):
        from . import engine

        return getattr(engine, name)
    raise AttributeError(name)
