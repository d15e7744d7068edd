"""a2d-fetch's library: download every record's URL; failures become records, never gaps."""

from .engine import FetchOptions, fetch, needs_fetch
from .guards import DEFAULT_SCHEMES
from .policy import DEFAULT_DISALLOWED_DIRECTIVES, DEFAULT_USER_AGENT, HASHES

__all__ = ["fetch", "FetchOptions", "needs_fetch", "DEFAULT_SCHEMES", "DEFAULT_DISALLOWED_DIRECTIVES",
           "DEFAULT_USER_AGENT", "HASHES"]
