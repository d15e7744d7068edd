"""`python -m any2dataset.read` runs a2d-read."""

from ..commands.read import main

main()
