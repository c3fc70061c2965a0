"""The ``backend`` fixture: every contract runs once against the emulator and once against
real Stripe test mode (skipped, with the reason, unless ``STRIPE_CONTRACT_SECRET_KEY``
holds a test-mode key). See README, "Contract suite"."""

from __future__ import annotations

import warnings

import pytest

from stripe_emulator.testing import reset

from .backends import contract_key, emulator_backend, stripe_backend, stripe_key_problem


@pytest.fixture(params=["emulator", "stripe"], ids=["emulator", "stripe"])
def backend(request):
    if request.param == "emulator":
        url = request.getfixturevalue("emulator_url")
        reset(url)  # a fresh emulator: e.g. no portal configuration yet
        chosen = emulator_backend(url)
    else:
        key = contract_key()
        problem = stripe_key_problem(key)
        if problem:
            pytest.skip(problem)
        chosen = stripe_backend(key)
    yield chosen
    left = chosen.cleanup()
    if left:
        message = f"contract cleanup on {chosen.name} left: " + "; ".join(left)
        warnings.warn(message, stacklevel=1)
        # The emulator checks the cleanup code itself: there it must all succeed.
        assert not chosen.is_emulator, message


@pytest.fixture
def webhook_receiver():
    """A local HTTP endpoint recording deliveries (emulator contracts only: real Stripe
    cannot reach this machine)."""
    from tests.stripe_emulator.conftest import Receiver

    receiver = Receiver()
    yield receiver
    receiver.close()
