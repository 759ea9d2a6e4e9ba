"""One error hierarchy, mapped in one place to the OpenAI error envelope and an HTTP status."""

from __future__ import annotations

import math
from typing import Any


class CandorError(Exception):
    """Base of every error Candor reports to a client.

    `status`, `type` and `code` feed the OpenAI envelope
    `{"error": {"message", "type", "param", "code"}}`.
    """

    status: int = 500
    type: str = "server_error"
    code: str | None = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        status: int | None = None,
        type: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        if type is not None:
            self.type = type

    def headers(self) -> dict[str, str]:
        """HTTP headers the error response carries besides the envelope."""
        return {}

    def envelope(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


class InvalidRequest(CandorError):
    """The client's request is malformed (400)."""

    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class ModelNotFound(CandorError):
    """The requested model is not routed by this proxy (404)."""

    status = 404
    type = "invalid_request_error"
    code = "model_not_found"


class NotFound(CandorError):
    """No such route (404)."""

    status = 404
    type = "invalid_request_error"
    code = "not_found"


class PayloadTooLarge(CandorError):
    """The request body exceeds the configured limit (413)."""

    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class RequestTimeout(CandorError):
    """The client did not send its whole body in time (408); the connection is closed."""

    status = 408
    type = "invalid_request_error"
    code = "request_timeout"

    def headers(self) -> dict[str, str]:
        return {"connection": "close"}


class HeadTooLarge(CandorError):
    """The request line and headers are over the server's bound (431)."""

    status = 431
    type = "invalid_request_error"
    code = "request_header_fields_too_large"


class UnsupportedMediaType(CandorError):
    """The body is sent in an encoding Candor does not read (415)."""

    status = 415
    type = "invalid_request_error"
    code = "unsupported_media_type"


class UpstreamError(CandorError):
    """Anything that went wrong talking to an upstream model server."""

    status = 502
    type = "upstream_error"
    code: str | None = "bad_gateway"


class UpstreamUnreachable(UpstreamError):
    """The upstream refused or dropped the connection (502)."""

    code = "upstream_unreachable"


class UpstreamTimeout(UpstreamError):
    """The upstream did not answer in time (504)."""

    status = 504
    code = "upstream_timeout"


class UpstreamBadResponse(UpstreamError):
    """The upstream answered with something that is not the OpenAI wire protocol (502)."""

    code = "bad_upstream_response"


class UpstreamRejected(UpstreamError):
    """The upstream answered with its own 4xx/5xx; its envelope passes through unchanged."""

    def __init__(
        self, status: int, body: dict[str, Any], *, retry_after: str | None = None
    ) -> None:
        error = body.get("error") if isinstance(body.get("error"), dict) else {}
        assert isinstance(error, dict)
        super().__init__(
            str(error.get("message") or f"upstream returned HTTP {status}"),
            param=error.get("param") if isinstance(error.get("param"), str) else None,
            code=str(error["code"]) if error.get("code") is not None else None,
            status=status,
            type=str(
                error.get("type") or ("invalid_request_error" if status < 500 else "server_error")
            ),
        )
        if error.get("code") is None:
            self.code = None
        self.retry_after = retry_after
        # The `x-candor-*` headers of the request it ended (set by the pipeline).
        self.candor_headers: dict[str, str] = {}

    def headers(self) -> dict[str, str]:
        # A client told to slow down (429, 503) hears when from the upstream itself.
        retry = {"retry-after": self.retry_after} if self.retry_after else {}
        return {**self.candor_headers, **retry}


class ClientGone(CandorError):
    """The client hung up before its answer started; nobody reads this error (499, as nginx)."""

    status = 499
    type = "invalid_request_error"
    code = "client_closed_request"


class ClientStalled(CandorError):
    """The client stopped reading its stream, past `server.send_timeout`: the stream is ended
    (headers are gone, and a client that does not read would not read this error either)."""

    status = 408
    type = "invalid_request_error"
    code = "client_stalled"


class ConfigError(CandorError):
    """The configuration or a policy file is invalid; the message names file, line and field."""

    code = "config_error"


class Unauthorized(CandorError):
    """No valid Candor API key (401)."""

    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class RateLimited(CandorError):
    """The key used up its requests or tokens per minute (429); `retry_after` in seconds.
    Its `type` names the limit, `requests` or `tokens`, as OpenAI's does."""

    status = 429
    type = "requests"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: float, limit: str = "requests") -> None:
        super().__init__(message, type=limit)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"retry-after": str(max(1, math.ceil(self.retry_after)))}


class StoreUnavailable(CandorError):
    """The shared store does not answer and the operation cannot fail open (503)."""

    status = 503
    code = "store_unavailable"
