"""Turning verdicts into what the client experiences: policies and their actions."""
