"""any2dataset: turn lists of file URLs into training datasets with small Unix filters."""

__version__ = "0.1.0"
