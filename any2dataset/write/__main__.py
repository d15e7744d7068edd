"""`python -m any2dataset.write` runs a2d-write."""

from ..commands.write import main

main()
