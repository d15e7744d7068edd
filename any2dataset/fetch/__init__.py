"""a2d-fetch's library: download every record's URL; failures become records, never gaps."""

from .engine import FetchOptions, fetch
from .policy import DEFAULT_USER_AGENT, HASHES

__all__ = ["fetch", "FetchOptions", "DEFAULT_USER_AGENT", "HASHES"]
