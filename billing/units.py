"""Unit labels for display: "1 call", "2 calls", "215 GB" (symbols do not take a plural).

A meter's ``unit_label`` is stored in the singular ("call", "seat", "GB"). Symbols and
abbreviations are invariant; other words take a regular English plural, with a small
table of irregular ones."""

from decimal import Decimal

INVARIANT = frozenset(
    {"b", "kb", "mb", "gb", "tb", "pb", "kib", "mib", "gib", "tib", "kwh", "wh", "mwh"}
    | {"h", "min", "s", "ms", "us", "µs", "ns", "vcpu-h", "gb-h", "%"}
)
IRREGULAR = {"person": "people", "child": "children", "index": "indices", "datum": "data"}


def unit_plural(label: str) -> str:
    """The plural of a singular unit label: invariant symbols stay as they are."""
    word = label.strip()
    if not word or word.lower() in INVARIANT or not word[-1:].isalpha():
        return word
    if word.lower() in IRREGULAR:
        return IRREGULAR[word.lower()]
    if any(c.isupper() for c in word):  # an abbreviation: "GB", "API"
        return word
    if word.endswith(("s", "x", "z", "ch", "sh")):
        return word + "es"
    if word.endswith("y") and word[-2:-1] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"


def unit_for(label: str, count: int | Decimal | None = None) -> str:
    """The label for ``count`` units: singular for exactly 1, else the plural
    (``None``: the plural, as in "Share of the included calls")."""
    if count is not None and abs(Decimal(count)) == 1:
        return label.strip()
    return unit_plural(label)


def quantity_text(count: int, label: str) -> str:
    """``quantity_text(13707, "call") == "13,707 calls"``; ``(215, "GB") == "215 GB"``."""
    return f"{count:,} {unit_for(label, count)}"
