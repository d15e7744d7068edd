"""One thin click module per executable; the work is in the library packages."""
