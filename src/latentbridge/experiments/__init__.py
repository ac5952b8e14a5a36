"""Experiments composed from the core: each returns tidy rows and has a CLI command."""
