"""Command-line plumbing of the entry points (``scripts/<verb>.py``): option types, shared option groups,
the torchrun launcher, and the one way a user's mistake becomes a message and an exit code. Only entry
points import this package; the library below it takes typed values and never sees argparse."""
