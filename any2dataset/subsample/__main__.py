"""`python -m any2dataset.subsample` runs a2d-subsample."""

from ..commands.subsample import main

main()
