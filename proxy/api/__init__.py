"""Thin HTTP routers: each reads the request, calls one service, returns."""
