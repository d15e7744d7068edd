"""`python -m any2dataset` runs the all-in-one any2dataset command."""

from .commands.all_in_one import main

main()
