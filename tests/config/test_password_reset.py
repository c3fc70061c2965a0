"""Issue 14 item 9: the login keeps the username on failure; password reset by e-mail
works end to end and does not tell whether an address has a sign-in."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.urls import reverse

pytestmark = pytest.mark.django_db


@pytest.fixture
def ada():
    return get_user_model().objects.create_user(
        "ada", email="ada@acme.example", password="old password 123"
    )


def test_failed_login_keeps_the_username_not_the_password(client, ada):
    response = client.post(reverse("login"), {"username": "ada", "password": "wrong password"})
    html = response.content.decode()
    assert "didn&#x27;t match" in html or "didn't match" in html
    username = re.search(r'<input id="id_username"[^>]*>', html, re.S)[0]
    assert 'value="ada"' in username
    password = re.search(r'<input id="id_password"[^>]*>', html, re.S)[0]
    assert "value=" not in password and "wrong password" not in html
    assert reverse("password_reset") in html  # "Forgot your password?"


def test_password_reset_by_email_end_to_end(client, ada):
    response = client.post(reverse("password_reset"), {"email": "ADA@acme.example"})
    assert response.status_code == 302
    assert response["Location"] == reverse("password_reset_done")
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["ada@acme.example"]
    assert message.subject == "Reset your Meterdesk password"
    link = re.search(r"http://testserver(/accounts/reset/[^/\s]+/[^/\s]+/)", message.body)[1]

    # The link works: Django redirects to a URL without the token, then shows the form.
    page = client.get(link, follow=True)
    assert "Choose a new password" in page.content.decode()
    form_url = page.redirect_chain[-1][0]
    done = client.post(
        form_url,
        {"new_password1": "a brand new passphrase 9", "new_password2": "a brand new passphrase 9"},
    )
    assert done["Location"] == reverse("password_reset_complete")
    ada.refresh_from_db()
    assert ada.check_password("a brand new passphrase 9")
    assert not ada.check_password("old password 123")
    # Used once: the same link no longer works.
    client.logout()
    again = client.get(link, follow=True).content.decode()
    assert "This link has expired" in again


def test_reset_does_not_tell_whether_the_address_has_a_sign_in(client, ada):
    known = client.post(reverse("password_reset"), {"email": "ada@acme.example"}, follow=True)
    unknown = client.post(reverse("password_reset"), {"email": "nobody@acme.example"}, follow=True)
    assert known.redirect_chain == unknown.redirect_chain

    # The same page, word for word (but for the per-request CSRF token).
    def text(response):
        return re.sub(r'"X-CSRFToken": "[^"]*"', "", response.content.decode())

    assert text(known) == text(unknown)
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["ada@acme.example"]


@pytest.fixture(autouse=True)
def fresh_throttle():
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


def test_password_reset_cannot_flood_an_inbox(client, ada, settings, fresh_throttle):
    """At most PASSWORD_RESET_PER_ADDRESS e-mails an hour per address; beyond that the
    same "sent" page, and nothing sent."""
    settings.PASSWORD_RESET_PER_ADDRESS = 3
    for _ in range(5):
        response = client.post(reverse("password_reset"), {"email": "ada@acme.example"})
        assert response["Location"] == reverse("password_reset_done")
    assert len(mail.outbox) == 3


def test_one_client_address_cannot_spray_resets(client, ada, settings, fresh_throttle):
    settings.PASSWORD_RESET_PER_IP = 4
    for n in range(4):
        client.post(reverse("password_reset"), {"email": f"nobody{n}@x.example"})
    client.post(reverse("password_reset"), {"email": "ada@acme.example"})
    assert mail.outbox == []  # the fifth request from this address sends nothing
    client.post(
        reverse("password_reset"), {"email": "ada@acme.example"}, REMOTE_ADDR="198.51.100.7"
    )
    assert len(mail.outbox) == 1
