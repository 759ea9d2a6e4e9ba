"""A scripted upstream model server for tests, the demo and benchmarks (no real model)."""
