"""Stripe's parameter validation, for every endpoint the emulator serves, before its handler.

The rules are ``param_rules.json`` beside this module, generated from stripe-python's
``*Params`` TypedDicts by ``stripe_emulator/tools/generate_param_rules.py`` (this module
reads only the JSON: the emulator never imports stripe). A request's decoded parameters
(``a[b][0][c]=v`` already nested by :func:`stripe_emulator.forms.decode_form`) are walked
against the endpoint's rule; the first problem is Stripe's 400 ``invalid_request_error``
naming the parameter in ``error.param`` the way Stripe does (``recurring[interval]``,
``items[0][price]``):

- a key the endpoint does not take: ``parameter_unknown``, "Received unknown parameter: X"
- a required key missing: ``parameter_missing``, "Missing required param: X."
- an empty value for a key that cannot be unset: ``parameter_invalid_empty``
- not an integer: ``parameter_invalid_integer``, "Invalid integer: V"
- a value outside an enum, a bad boolean or decimal, a string over its maximum length,
  an object, array or hash of the wrong shape: "Invalid ..." naming the parameter
- metadata: at most 50 keys, keys up to 40 characters, values up to 500 characters
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

from .errors import StripeError

RULES_FILE = Path(__file__).with_name("param_rules.json")
METADATA_MAX_KEYS = 50
METADATA_KEY_MAX = 40
METADATA_VALUE_MAX = 500
_INTEGER = re.compile(r"^-?\d+$")
_DECIMAL = re.compile(r"^-?(\d+(\.\d*)?|\.\d+)$")
_DOC = "https://stripe.com/docs/error-codes/"


@cache
def rules() -> dict:
    return json.loads(RULES_FILE.read_text(encoding="utf-8"))


def endpoint_rule(method: str, template: str) -> dict | None:
    name = rules()["endpoints"].get(f"{method} {template}")
    return {"ref": name} if name else None


def check_params(method: str, template: str, params: dict) -> None:
    """Raise Stripe's 400 for the first parameter the endpoint would refuse."""
    rule = endpoint_rule(method, template)
    if rule is not None:
        _check(rule, params, "")


def error(message: str, param: str, code: str | None = None) -> StripeError:
    extra = {"doc_url": _DOC + code.replace("_", "-")} if code else None
    return StripeError(400, message, param=param or None, code=code, extra=extra)


def _name(prefix: str, key) -> str:
    return f"{prefix}[{key}]" if prefix else str(key)


def _resolve(rule: dict) -> dict:
    while "ref" in rule:
        empty = rule.get("empty")
        rule = rules()["defs"][rule["ref"]]
        if empty:
            rule = {**rule, "empty": True}
    return rule


def _check(rule: dict, value, param: str) -> None:
    rule = _resolve(rule)
    if value == "" or value is None:
        if rule.get("empty") or (rule.get("t") == "any" and not rule.get("of")):
            return
        raise error(
            f"You passed an empty string for '{param}'. We assume empty values are an "
            f"attempt to unset a parameter; however '{param}' cannot be unset. You should "
            f"remove '{param}' from your request or supply a non-empty value.",
            param,
            "parameter_invalid_empty",
        )
    kind = rule.get("t")
    if kind == "any":
        _check_any(rule, value, param)
    elif kind == "obj":
        _check_object(rule, value, param)
    elif kind == "arr":
        if not isinstance(value, list):
            raise error(f"Invalid array: {param} must be an array", param)
        for i, item in enumerate(value):
            _check(rule["i"], item, _name(param, i))
    elif kind == "map":
        _check_map(rule, value, param)
    else:
        _check_scalar(rule, value, param)


def _check_any(rule: dict, value, param: str) -> None:
    choices = [_resolve(r) for r in rule["of"]]
    if not choices:
        return  # typed Any by Stripe: anything goes
    structured = isinstance(value, dict | list)
    fitting = [
        r
        for r in choices
        if (r["t"] in ("obj", "map") and isinstance(value, dict))
        or (r["t"] == "arr" and isinstance(value, list))
        or (r["t"] not in ("obj", "map", "arr") and not structured)
    ]
    first: StripeError | None = None
    for r in fitting or choices[:1]:
        try:
            _check(r, value, param)
            return
        except StripeError as exc:
            first = first or exc
    raise first


def _check_object(rule: dict, value, param: str) -> None:
    if not isinstance(value, dict):
        raise error(f"Invalid object: {param} must be an object (a hash)", param)
    fields = rule["f"]
    for key in value:
        if key not in fields:
            name = _name(param, key)
            raise error(f"Received unknown parameter: {name}", name, "parameter_unknown")
    for key in rule["req"]:
        if key not in value:
            name = _name(param, key)
            raise error(f"Missing required param: {name}.", name, "parameter_missing")
    for key, item in value.items():
        _check(fields[key], item, _name(param, key))


def _check_map(rule: dict, value, param: str) -> None:
    if not isinstance(value, dict):
        raise error(f"Invalid hash: {param} must be a hash", param)
    metadata = param == "metadata" or param.endswith("[metadata]")
    if metadata and len(value) > METADATA_MAX_KEYS:
        raise error(
            f"Invalid {param}: you can have up to {METADATA_MAX_KEYS} metadata keys, "
            f"but you passed in {len(value)}.",
            param,
        )
    for key, item in value.items():
        name = _name(param, key)
        if metadata and len(str(key)) > METADATA_KEY_MAX:
            raise error(
                f"Metadata keys can have up to {METADATA_KEY_MAX} characters, but you passed "
                f"in a key that is {len(str(key))} characters. Invalid key: {key}",
                name,
            )
        if metadata and isinstance(item, str) and len(item) > METADATA_VALUE_MAX:
            raise error(
                f"Metadata values can have up to {METADATA_VALUE_MAX} characters, but you "
                f"passed in a value that is {len(item)} characters. Invalid value: {item}",
                name,
            )
        if metadata and item == "":
            continue  # unsets that key
        _check(rule["v"], item, name)


def _one_of(values: list[str]) -> str:
    if len(values) <= 2:
        return " or ".join(values)
    return ", ".join(values[:-1]) + ", or " + values[-1]


def _check_scalar(rule: dict, value, param: str) -> None:
    kind = rule["t"]
    if isinstance(value, dict | list):
        raise error(f"Invalid {param}: expected a single value, not a hash or an array", param)
    if kind == "int":
        if isinstance(value, bool) or not (
            isinstance(value, int) or _INTEGER.match(str(value).strip())
        ):
            raise error(f"Invalid integer: {value}", param, "parameter_invalid_integer")
    elif kind == "num":
        if isinstance(value, bool) or not (
            isinstance(value, int | float) or _DECIMAL.match(str(value).strip())
        ):
            raise error(f"Invalid decimal: {value}", param)
    elif kind == "bool":
        if not (isinstance(value, bool) or str(value) in ("true", "false")):
            raise error(f"Invalid boolean: {value}", param)
    elif kind == "enum":
        if str(value) not in rule["v"]:
            raise error(f"Invalid {param}: must be one of {_one_of(rule['v'])}", param)
    elif kind == "str":
        if not isinstance(value, str):
            raise error(f"Invalid string: {value!r} is not a string", param)
        limit = rule.get("max", rules()["default_max_length"])
        if len(value) > limit:
            shown = value[:20] + "..." if len(value) > 20 else value
            raise error(f"Invalid string: {shown}; must be at most {limit} characters", param)
