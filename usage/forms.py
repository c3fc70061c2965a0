"""Forms: the query parameters of ``GET /api/v1/usage/summary``."""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone

from billing.mirror.customers import account_for_customer_id
from billing.models import Meter
from usage.event_validation import MAX_DIGITS, InvalidEvent, parse_timestamp, storable
from usage.selectors.periods import usage_period_for
from usage.selectors.summary_api import GRANULARITIES

MAX_RANGE = timedelta(days=400)

# Which error the API reports when several parameters are wrong: (field, code or None).
ERROR_ORDER = (
    ("customer", "missing_parameter"),
    ("event_name", "missing_parameter"),
    ("granularity", None),
    ("event_name", None),
    ("customer", None),
    ("start", None),
    ("end", None),
)
NOT_FOUND = {"unknown_meter", "unknown_customer"}
CODES = {"missing_parameter", "invalid_parameter", *NOT_FOUND}


def _storable(value: str, name: str) -> str:
    if not storable(value):
        raise ValidationError(
            f"{name}: must not contain NUL or unpaired surrogate characters",
            code="invalid_parameter",
        )
    return value


def _required(name: str) -> dict:
    return {"required": f"{name}: this parameter is required"}


class UsageSummaryForm(forms.Form):
    """Cleans to ``account``, ``meter``, ``granularity``, ``start`` and ``end`` (both
    default to the account's current billing period, or calendar month)."""

    customer = forms.CharField(strip=False, error_messages=_required("customer"))
    event_name = forms.CharField(strip=False, error_messages=_required("event_name"))
    granularity = forms.CharField(required=False, strip=False)
    start = forms.CharField(required=False, strip=False)
    end = forms.CharField(required=False, strip=False)

    def clean_granularity(self) -> str:
        granularity = self.cleaned_data["granularity"] or "hour"
        if granularity not in GRANULARITIES:
            raise ValidationError("granularity: must be 'hour' or 'day'", code="invalid_parameter")
        return granularity

    def clean_event_name(self) -> str:
        event_name = _storable(self.cleaned_data["event_name"], "event_name")
        self.cleaned_data["meter"] = Meter.objects.filter(event_name=event_name).first()
        if self.cleaned_data["meter"] is None:
            raise ValidationError(
                f"event_name: no meter named {event_name!r}", code="unknown_meter"
            )
        return event_name

    def clean_customer(self) -> str:
        customer = _storable(self.cleaned_data["customer"], "customer")
        self.cleaned_data["account"] = account_for_customer_id(customer_id=customer)
        if self.cleaned_data["account"] is None:
            raise ValidationError(f"customer: no account has {customer!r}", code="unknown_customer")
        return customer

    def _clean_time(self, name: str):
        raw = self.cleaned_data[name]
        if not raw:
            return None
        if raw.isascii() and raw.isdigit():
            if len(raw) > MAX_DIGITS:  # int() refuses over 4,300 digits
                raise ValidationError(f"{name}: not a valid unix time", code="invalid_parameter")
            raw = int(raw)
        try:
            return parse_timestamp(raw, name=name)
        except InvalidEvent as exc:
            raise ValidationError(str(exc), code="invalid_parameter") from None

    def clean_start(self):
        return self._clean_time("start")

    def clean_end(self):
        return self._clean_time("end")

    def clean(self) -> dict:
        data = super().clean()
        if self.errors:
            return data
        start, end = data["start"], data["end"]
        if start is None or end is None:
            default_start, default_end = usage_period_for(
                account=data["account"], at=timezone.now()
            )
            start, end = start or default_start, end or default_end
        if end <= start:
            self.add_error("end", ValidationError("end: must be after start", "invalid_parameter"))
        elif end - start > MAX_RANGE:
            self.add_error(
                "end", ValidationError("end: at most 400 days after start", "invalid_parameter")
            )
        data["start"], data["end"] = start, end
        return data

    def first_error(self) -> tuple[int, str, str, str]:
        """(status, code, message, field) of the error the API reports."""
        errors = {
            (name, "missing_parameter" if e.code == "required" else e.code): e
            for name, field_errors in self.errors.as_data().items()
            for e in field_errors
        }
        for name, code in ERROR_ORDER:
            for (field, error_code), error in errors.items():
                if field == name and (code is None or code == error_code):
                    status = 404 if error_code in NOT_FOUND else 400
                    message = error.messages[0]
                    if error_code not in CODES:  # Django's own, e.g. a NUL character
                        error_code, message = "invalid_parameter", f"{field}: {message}"
                    return status, error_code, message, field
        raise ValueError("the form has no errors")
