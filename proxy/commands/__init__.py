"""Implementations of the `candor` subcommands that run servers."""
