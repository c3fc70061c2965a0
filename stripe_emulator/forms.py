"""Decoding Stripe's form-encoded nested parameters, and typed access to them.

``items[0][price]=p&expand[]=customer&metadata[k]=v`` becomes
``{"items": [{"price": "p"}], "expand": ["customer"], "metadata": {"k": "v"}}``.
Values stay strings; the ``as_*`` helpers coerce them and raise Stripe's 400s.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from urllib.parse import parse_qsl

from .errors import invalid

_KEY_PART = re.compile(r"\[([^\]]*)\]")
# Dicts whose keys are free-form strings: never turned into lists.
_FREE_FORM = {"metadata", "payload"}


def _split_key(key: str) -> list[str]:
    head, _, rest = key.partition("[")
    if not rest:
        return [head]
    return [head, *_KEY_PART.findall("[" + rest)]


def decode_form(body: str) -> dict:
    root: dict = {}
    for key, value in parse_qsl(body, keep_blank_values=True):
        parts = _split_key(key)
        cur = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if part == "":  # "expand[]": append
                part = str(len(cur))
            if last:
                cur[part] = value
            else:
                cur = cur.setdefault(part, {})
                if not isinstance(cur, dict):
                    raise invalid(f"Invalid nesting for parameter {key}.", param=key)
    return _listify(root, None)


def _listify(node, name):
    if not isinstance(node, dict):
        return node
    out = {k: _listify(v, k) for k, v in node.items()}
    if name not in _FREE_FORM and out and all(k.isdigit() for k in out):
        return [out[k] for k in sorted(out, key=int)]
    return out


def as_int(value, param: str, *, minimum: int | None = None) -> int:
    if isinstance(value, bool):
        raise invalid(f"Invalid integer: {value}", param=param)
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        raise invalid(f"Invalid integer: {value}", param=param) from None
    if minimum is not None and number < minimum:
        raise invalid(f"This value must be greater than or equal to {minimum}.", param=param)
    return number


def as_bool(value, param: str) -> bool:
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("true", "1"):
        return True
    if str(value).lower() in ("false", "0", ""):
        return False
    raise invalid(f"Invalid boolean: {value}", param=param)


def as_decimal(value, param: str) -> Decimal:
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise invalid(f"Invalid decimal: {value}", param=param) from None
    if not number.is_finite():
        raise invalid(f"Invalid decimal: {value}", param=param)
    return number


def decimal_str(number: Decimal) -> str:
    """Stripe's ``*_decimal`` string: no exponent, no trailing zeros ("2000", "0.2")."""
    text = format(number, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def as_list(value, param: str) -> list:
    if value is None:
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        return list(value.values())
    if isinstance(value, str):
        return [value]
    raise invalid(f"Invalid array: {param}", param=param)


def as_dict(value, param: str) -> dict:
    if value is None or value == "":
        return {}
    if not isinstance(value, dict):
        raise invalid(f"Invalid hash: {param}", param=param)
    return value


def one_of(value, param: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise invalid(f"Invalid {param}: must be one of {', '.join(choices)}", param=param)
    return value


def merge_metadata(current: dict, update) -> dict:
    """Stripe's metadata update: keys merge, an empty value (or ``metadata=""``) unsets."""
    if update == "":
        return {}
    merged = dict(current or {})
    for key, value in as_dict(update, "metadata").items():
        if value == "" or value is None:
            merged.pop(key, None)
        else:
            merged[key] = str(value)
    return merged
