"""Exact Decimal arithmetic for rating.

Rating only multiplies integers by decimal unit amounts and adds the results, which
is exact given enough digits. The default context keeps 28 significant digits and
would silently round a 12-decimal unit amount times a large quantity; this context
keeps far more and *traps* ``Inexact``, so a result is either exact or an error.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import (
    Context,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
    localcontext,
)

EXACT_CONTEXT = Context(
    prec=400,
    traps=[InvalidOperation, DivisionByZero, Overflow, Inexact],
)


@contextmanager
def exact_arithmetic() -> Iterator[None]:
    """Run the block with :data:`EXACT_CONTEXT` as the thread's Decimal context."""
    with localcontext(EXACT_CONTEXT):
        yield
