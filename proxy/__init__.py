"""Candor: an OpenAI-compatible proxy that detects and re-routes censored LLM answers."""

__version__ = "0.1.0"
