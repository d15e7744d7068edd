"""python -m any2dataset.stats: a2d-stats."""

from ..commands.stats import main

main()
