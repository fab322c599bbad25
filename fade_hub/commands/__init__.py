"""Subcommands of the ``fade-hub`` CLI, one module each, each exposing ``register(subparsers)``."""
