"""The real-Stripe half runs only with a test-mode key; a live key never reaches a client."""

from __future__ import annotations

import pytest

from .backends import KEY_ENV, stripe_backend, stripe_key_problem

pytestmark = pytest.mark.contract


@pytest.mark.parametrize("key", ["sk_live_51abc", "rk_live_51abc"])
def test_a_live_key_is_refused(key):
    problem = stripe_key_problem(key)
    assert problem and "live-mode key" in problem and "refused" in problem
    assert "51abc" not in problem  # only the prefix is ever shown
    with pytest.raises(AssertionError):
        stripe_backend(key)


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        (None, "is not set"),
        ("", "is not set"),
        ("pk_test_1", "is not a Stripe test-mode secret key (sk_test_ / rk_test_)"),
        ("whsec_1", "is not a Stripe test-mode secret key (sk_test_ / rk_test_)"),
    ],
)
def test_anything_but_a_test_secret_key_is_a_skip_reason(key, reason):
    assert stripe_key_problem(key) == f"{KEY_ENV} {reason}"


@pytest.mark.parametrize("key", ["sk_test_51abc", "rk_test_51abc"])
def test_test_mode_keys_run(key):
    assert stripe_key_problem(key) is None
    assert stripe_backend(key).name == "stripe"  # builds a client; makes no request
