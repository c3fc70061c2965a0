"""Login throttling (issue 12, item 6: 150 wrong passwords, then the right one logged in)."""

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

pytestmark = pytest.mark.django_db


@pytest.fixture
def user():
    return get_user_model().objects.create_user("ada", password="the-right-password-1")


def _login(client, username, password, ip="203.0.113.7"):
    return client.post(
        reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=ip
    )


def test_the_right_password_after_too_many_wrong_ones_is_refused(client, user, settings):
    limit = settings.AXES_FAILURE_LIMIT
    for attempt in range(limit - 1):
        assert _login(client, "ada", f"wrong-{attempt}").status_code == 200  # the form again
    locked = _login(client, "ada", "wrong-last")
    assert locked.status_code == 429
    assert "Too many sign-in attempts" in locked.content.decode()
    # The right password no longer signs in while the lockout lasts, even from elsewhere.
    right = _login(client, "ada", "the-right-password-1", ip="198.51.100.9")
    assert right.status_code == 429
    assert "_auth_user_id" not in client.session


def test_one_address_spraying_many_usernames_is_locked_out(client, user, settings):
    for attempt in range(settings.AXES_FAILURE_LIMIT):
        _login(client, f"guess-{attempt}", "password")
    assert _login(client, "ada", "the-right-password-1").status_code == 429
    # Another address may still sign in as ada.
    response = _login(client, "ada", "the-right-password-1", ip="198.51.100.9")
    assert response.status_code == 302


def test_a_few_typos_then_the_right_password_signs_in(client, user):
    for attempt in range(3):
        _login(client, "ada", f"typo-{attempt}")
    response = _login(client, "ada", "the-right-password-1")
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(user.pk)


def test_behind_a_proxy_each_client_is_throttled_by_its_own_address(client, user, settings):
    """With TRUSTED_PROXY_COUNT=1 every request comes from the proxy's address; one
    visitor's wrong passwords must not lock out another visitor."""
    settings.TRUSTED_PROXY_COUNT = 1
    proxy = "10.0.0.2"
    for attempt in range(settings.AXES_FAILURE_LIMIT):
        client.post(
            reverse("login"),
            {"username": f"guess-{attempt}", "password": "x"},
            REMOTE_ADDR=proxy,
            # the attacker forges a left entry; the proxy appends the real address
            HTTP_X_FORWARDED_FOR="1.2.3.4, 203.0.113.66",
        )
    other = client.post(
        reverse("login"),
        {"username": "ada", "password": "the-right-password-1"},
        REMOTE_ADDR=proxy,
        HTTP_X_FORWARDED_FOR="198.51.100.20",
    )
    assert other.status_code == 302
    attacker = client.post(
        reverse("login"),
        {"username": "ada", "password": "the-right-password-1"},
        REMOTE_ADDR=proxy,
        HTTP_X_FORWARDED_FOR="9.9.9.9, 203.0.113.66",
    )
    assert attacker.status_code == 429
