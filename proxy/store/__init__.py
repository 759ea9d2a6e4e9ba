"""Shared state behind one interface: an embedded in-memory store, or Redis."""
