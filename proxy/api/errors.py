"""Every error leaves as an OpenAI envelope with the right status; never a stack trace."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response

from proxy.errors import CandorError, InvalidRequest, NotFound

log = logging.getLogger(__name__)


def error_response(exc: CandorError) -> JSONResponse:
    return JSONResponse(exc.envelope(), status_code=exc.status, headers=exc.headers())


async def _candor_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CandorError)
    return error_response(exc)


# Codes for the statuses the framework itself answers with (a 404 is `NotFound`'s).
_HTTP_CODES = {405: "method_not_allowed"}


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return error_response(NotFound(f"no route for {request.method} {request.url.path}"))
    error = CandorError(str(exc.detail), status=exc.status_code, type="invalid_request_error")
    error.code = _HTTP_CODES.get(exc.status_code)
    response = error_response(error)
    response.headers.update(exc.headers or {})  # `Allow` on a 405
    if "allow" in response.headers:
        response.headers["allow"] = _with_head(response.headers["allow"])
    return response


def _with_head(allow: str) -> str:
    """Where `GET` is allowed so is `HEAD` (answered by `head.HeadAsGet`)."""
    methods = [m.strip() for m in allow.split(",")]
    return ", ".join([*methods, "HEAD"]) if "GET" in methods and "HEAD" not in methods else allow


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    for error in exc.errors():
        # ("query", "limit"): name the parameter and say what is wrong with it.
        loc = [str(p) for p in error.get("loc", ())[1:]]
        if loc:
            name = ".".join(loc)
            return error_response(
                InvalidRequest(f"{name}: {error.get('msg', 'invalid')}", param=name)
            )
    return error_response(InvalidRequest("the request does not match the API's schema"))


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(CandorError("internal error in Candor"))


def install(app: FastAPI) -> None:
    app.add_exception_handler(CandorError, _candor_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)
