"""Pytest fixtures for the scripted upstream model server (`proxy.demo.upstream`).

`upstream_server` is one server per session, in a background thread with its own loop;
`upstream` hands it to a test with its recorded requests and scripts reset before and after.
Import both into a conftest (or a test module) to use them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from proxy.demo.upstream import ScriptedUpstream


@pytest.fixture(scope="session")
def upstream_server() -> Iterator[ScriptedUpstream]:
    """A started scripted upstream shared by the whole session (stalls last 3 s)."""
    server = ScriptedUpstream(stall_seconds=3.0)
    server.start_in_thread()
    yield server
    server.stop_in_thread()


@pytest.fixture
def upstream(upstream_server: ScriptedUpstream) -> Iterator[ScriptedUpstream]:
    """The session's scripted upstream, with no recorded requests and its built-in scripts.

    Use `.base_url` (`http://127.0.0.1:PORT/v1`), `.root_url` (for litellm's anthropic
    `api_base`), `.requests` / `.last_request` (what it received), `.add_script()`.
    """
    upstream_server.reset()
    yield upstream_server
    upstream_server.reset()
