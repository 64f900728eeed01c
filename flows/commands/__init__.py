"""CLI subcommands: one module per command group, each with ``register(subparsers)``; discovered by name."""
