"""`python -m any2dataset.fetch` runs a2d-fetch."""

from ..commands.fetch import main

main()
