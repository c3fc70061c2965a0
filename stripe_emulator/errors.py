"""Stripe's error bodies, raised from anywhere in a request and rendered by the server."""

from __future__ import annotations


class StripeError(Exception):
    """An error answered as ``{"error": {type, code, message, param}}`` with ``status``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        extra: dict | None = None,
        headers: dict | None = None,
    ):
        super().__init__(message)
        self.headers = headers or {}  # extra response headers (Stripe-Should-Retry)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.extra = extra or {}

    def body(self) -> dict:
        error = {"type": self.type, "message": self.message}
        if self.code:
            error["code"] = self.code
        if self.param:
            error["param"] = self.param
        error.update(self.extra)
        return {"error": error}


def invalid(message: str, *, param: str | None = None, code: str | None = None) -> StripeError:
    """A 400 ``invalid_request_error``."""
    return StripeError(400, message, param=param, code=code)


def missing_param(param: str) -> StripeError:
    return StripeError(
        400, f"Missing required param: {param}.", code="parameter_missing", param=param
    )


def no_such(kind: str, object_id: str, *, param: str = "id") -> StripeError:
    """Stripe's 404 for an unknown id, e.g. ``No such customer: 'cus_x'``."""
    return StripeError(404, f"No such {kind}: '{object_id}'", code="resource_missing", param=param)
