"""The `csadetect` command line: one module per command group, each with `register(subparsers)`,
assembled by :mod:`csadetect.cli.main` (JSON Lines on stdout, people's messages on stderr, one-line
errors with a non-zero exit code)."""
