"""The streaming loader: a dataset object a training loop iterates, straight from an index of
URLs or from datasets a2d-write produced (issue 16). `cache` keeps downloaded payloads on a
node's disk under a byte budget, shared by the loader's worker processes."""
