"""Schemathesis against Candor's own OpenAPI document: no 5xx, every answer as documented.

The public routes only (admin routes are behind the admin key). Candor runs on a real socket in
front of the scripted upstream. Valid chat requests name a well-behaved model, so a 5xx can only
be Candor's own; invalid ones (any other model name among them) must be 4xx.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from proxy.demo.upstream import ScriptedUpstream
from tests.e2e.conftest import start_candor
from tests.servers import CandorServer

pytestmark = pytest.mark.e2e

PUBLIC = ["/v1/chat/completions", "/v1/embeddings", "/v1/models", "/healthz", "/readyz"]
WELL_BEHAVED = ["fixed", "echo", "reasoning-demo", "tools-demo", "honest-demo", "qwen-demo"]
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
FUZZ = settings(
    max_examples=40,
    deadline=None,
    database=None,  # nothing written beside the checkout
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(scope="module")
def server(scripted: ScriptedUpstream) -> Iterator[CandorServer]:
    mp = pytest.MonkeyPatch()
    candor = start_candor(mp, scripted)
    yield candor
    candor.stop()
    mp.undo()


def fuzzed_document(server: CandorServer) -> dict[str, Any]:
    """Candor's document, with `model` leaning to routed models so answers are exercised."""
    with httpx.Client(timeout=5) as http:
        document: dict[str, Any] = http.get(f"{server.url}/openapi.json").json()
    fuzzed = copy.deepcopy(document)
    fuzzed["paths"] = {path: document["paths"][path] for path in PUBLIC}
    body = fuzzed["paths"]["/v1/chat/completions"]["post"]["requestBody"]
    body["content"]["application/json"]["schema"]["properties"]["model"] = {"enum": WELL_BEHAVED}
    body["content"]["application/json"]["example"]["model"] = "fixed"
    return fuzzed


def run(case_strategy: st.SearchStrategy[Case], base_url: str) -> None:
    @FUZZ
    @given(case=case_strategy)
    def fuzz(case: Case) -> None:
        case.call_and_validate(base_url=base_url, checks=CHECKS, timeout=10)

    fuzz()


def test_the_public_routes_hold_to_the_document(server: CandorServer) -> None:
    schema = schemathesis.openapi.from_dict(fuzzed_document(server))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert sorted(op.path for op in operations) == sorted(PUBLIC)
    for operation in operations:
        run(operation.as_strategy(), server.url)
        if operation.method.upper() == "POST":
            run(operation.as_strategy(generation_mode=GenerationMode.NEGATIVE), server.url)
