"""Optional sign-in with the operator's OIDC provider (issue 18; dashboards.oidc).

A fake OpenID Connect provider runs as a real HTTP server in a thread (stdlib
``http.server``): discovery, authorize (redirects straight back with code and state, as a
provider does for a user already signed in there), token (checks the client secret, the
redirect URI and PKCE, answers an RS256 ID token signed with a key made by
``cryptography``), JWKS and userinfo. Django's test client drives Meterdesk's side;
the redirect to the provider is followed with ``requests`` (the test client cannot leave
``testserver``), and the provider's redirect back is opened with the test client.

Settings enable the provider per test; the URLconf is reloaded so ``/sso/`` is mounted
(and reloaded again afterwards, so other tests see the default: off).
"""

import base64
import hashlib
import importlib
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlencode, urlsplit

import jwt
import pytest
import requests
from allauth.socialaccount.models import SocialAccount, SocialApp
from cryptography.hazmat.primitives.asymmetric import rsa
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.test.utils import override_settings
from django.urls import (
    NoReverseMatch,
    Resolver404,
    clear_url_caches,
    get_resolver,
    resolve,
    reverse,
)

import config.urls
from billing.models import Account, Membership
from dashboards.oidc import oidc_enabled
from tests.conftest import ROOT
from tests.factories import make_user

pytestmark = pytest.mark.django_db

CLIENT_ID = "meterdesk-portal"
CLIENT_SECRET = "s3cret-for-tests"
PROVIDER_ID = "acme-sso"
LOGIN_PATH = f"/sso/oidc/{PROVIDER_ID}/login/"
CALLBACK_PATH = f"/sso/oidc/{PROVIDER_ID}/login/callback/"
SCREENSHOTS = ROOT / "var" / "screenshots"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class FakeProvider:
    """Just enough of an OpenID Connect provider for the authorization-code flow."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = "test-key-1"
        self.claims: dict = {}  # the user signed in at the provider: sub, email, ...
        self.codes: dict[str, dict] = {}
        self.access_tokens: dict[str, dict] = {}
        self.token_calls: list[dict] = []
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _json(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                query = dict(parse_qsl(url.query))
                if url.path == "/.well-known/openid-configuration":
                    self._json(200, provider.discovery())
                elif url.path == "/jwks":
                    self._json(200, provider.jwks())
                elif url.path == "/authorize":
                    status, location = provider.authorize(query)
                    self.send_response(status)
                    if location:
                        self.send_header("Location", location)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif url.path == "/userinfo":
                    bearer = self.headers.get("Authorization", "").removeprefix("Bearer ")
                    claims = provider.access_tokens.get(bearer)
                    self._json(200, claims) if claims else self._json(401, {"error": "x"})
                else:
                    self._json(404, {"error": "not_found"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                form = dict(parse_qsl(self.rfile.read(length).decode()))
                if urlsplit(self.path).path != "/token":
                    self._json(404, {"error": "not_found"})
                    return
                if authorization := self.headers.get("Authorization", ""):
                    user, _, password = (
                        base64.b64decode(authorization.removeprefix("Basic ")).decode()
                    ).partition(":")
                    form.setdefault("client_id", user)
                    form.setdefault("client_secret", password)
                self._json(*provider.token(form))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def discovery(self) -> dict:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "userinfo_endpoint": f"{self.issuer}/userinfo",
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "code_challenge_methods_supported": ["S256"],
        }

    def jwks(self) -> dict:
        key = jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return {"keys": [{**key, "kid": self.kid, "alg": "RS256", "use": "sig"}]}

    def authorize(self, query: dict) -> tuple[int, str]:
        if query.get("client_id") != CLIENT_ID or query.get("response_type") != "code":
            return 400, ""
        if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            return 400, ""  # Meterdesk turns PKCE on; its absence would be a regression
        code = secrets.token_urlsafe(16)
        self.codes[code] = {
            "redirect_uri": query["redirect_uri"],
            "challenge": query["code_challenge"],
            "claims": dict(self.claims),
        }
        back = {"code": code, "state": query.get("state", "")}
        return 302, f"{query['redirect_uri']}?{urlencode(back)}"

    def token(self, form: dict) -> tuple[int, dict]:
        self.token_calls.append(form)
        grant = self.codes.pop(form.get("code", ""), None)  # a code works once
        if (form.get("client_id"), form.get("client_secret")) != (CLIENT_ID, CLIENT_SECRET):
            return 401, {"error": "invalid_client"}
        if grant is None or grant["redirect_uri"] != form.get("redirect_uri"):
            return 400, {"error": "invalid_grant"}
        verifier = form.get("code_verifier", "")
        if _b64url(hashlib.sha256(verifier.encode()).digest()) != grant["challenge"]:
            return 400, {"error": "invalid_grant", "error_description": "PKCE"}
        now = int(time.time())
        id_token = jwt.encode(
            {
                "iss": self.issuer,
                "aud": CLIENT_ID,
                "iat": now,
                "exp": now + 300,
                **grant["claims"],
            },
            self.key,
            algorithm="RS256",
            headers={"kid": self.kid},
        )
        access_token = secrets.token_urlsafe(16)
        self.access_tokens[access_token] = grant["claims"]
        return 200, {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": 300,
            "id_token": id_token,
        }

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def fake_provider():
    provider = FakeProvider()
    yield provider
    provider.stop()


def _reload_urls() -> None:
    importlib.reload(config.urls)
    clear_url_caches()


@pytest.fixture
def provider(fake_provider):
    """Sign-in with OIDC on (as OIDC_SERVER_URL etc. would set it), against the fake."""
    fake_provider.claims = {}
    fake_provider.token_calls.clear()
    apps = [
        {
            "provider_id": PROVIDER_ID,
            "name": "Acme SSO",
            "client_id": CLIENT_ID,
            "secret": CLIENT_SECRET,
            "settings": {"server_url": fake_provider.issuer},
        }
    ]
    with override_settings(
        SOCIALACCOUNT_PROVIDERS={"openid_connect": {"OAUTH_PKCE_ENABLED": True, "APPS": apps}}
    ):
        _reload_urls()
        yield fake_provider
    _reload_urls()  # back to the default: off, /sso/ not mounted


@pytest.fixture
def member():
    account = Account.objects.create(name="Acme Analytics", billing_email="billing@acme.example")
    return make_user(account, "ada", Membership.Role.BILLING, "ada@acme.example")


def _sign_in(client, provider, *, state=None):
    """Press "Sign in with Acme SSO", pass the provider, and open its redirect back."""
    started = client.post(LOGIN_PATH, {"process": "login"})
    assert started.status_code == 302, started.content[:500]
    authorize = started["Location"]
    assert authorize.startswith(f"{provider.issuer}/authorize?")
    answer = requests.get(authorize, allow_redirects=False, timeout=5)
    assert answer.status_code == 302
    back = urlsplit(answer.headers["Location"])
    assert (back.netloc, back.path) == ("testserver", CALLBACK_PATH)
    query = dict(parse_qsl(back.query))
    if state is not None:
        query["state"] = state
    return client.get(f"{back.path}?{urlencode(query)}")


def _signed_in_user_id(client):
    return client.session.get("_auth_user_id")


def _refusal(response) -> str:
    assert response.status_code == 403
    html = response.content.decode()
    assert 'data-testid="sso-refused"' in html
    return " ".join(html.split())


def test_a_member_signs_in_and_lands_on_the_dashboard(client, provider, member):
    # The provider's e-mail differs in case only: addresses match case-insensitively.
    provider.claims = {"sub": "acme|1001", "email": "Ada@Acme.example", "email_verified": True}
    response = _sign_in(client, provider)
    assert response.status_code == 302 and response["Location"] == reverse("dashboards:home")
    assert _signed_in_user_id(client) == str(member.pk)
    assert client.session["_auth_user_backend"] == "django.contrib.auth.backends.ModelBackend"
    dashboard = client.get(response["Location"])
    assert dashboard.status_code == 200 and dashboard.context["user"] == member
    # The code was exchanged once, with the secret and the PKCE verifier (checked above).
    assert len(provider.token_calls) == 1 and provider.token_calls[0]["code_verifier"]
    linked = SocialAccount.objects.get()
    assert (linked.user, linked.uid, linked.provider) == (member, "acme|1001", PROVIDER_ID)

    # Again, after signing out: the linked identity signs in the same member.
    client.logout()
    response = _sign_in(client, provider)
    assert response.status_code == 302 and _signed_in_user_id(client) == str(member.pk)
    assert SocialAccount.objects.count() == 1


def test_next_is_kept_through_the_provider(client, provider, member):
    provider.claims = {"sub": "acme|1001", "email": "ada@acme.example", "email_verified": True}
    started = client.post(LOGIN_PATH, {"process": "login", "next": "/dashboard/invoices/"})
    answer = requests.get(started["Location"], allow_redirects=False, timeout=5)
    back = urlsplit(answer.headers["Location"])
    response = client.get(f"{back.path}?{back.query}")
    assert response.status_code == 302 and response["Location"] == "/dashboard/invoices/"


@pytest.mark.parametrize("who", ["nobody", "user without membership", "inactive member"])
def test_an_e_mail_without_a_member_is_refused_and_no_user_is_made(client, provider, who):
    account = Account.objects.create(name="Acme Analytics", billing_email="billing@acme.example")
    if who == "user without membership":
        get_user_model().objects.create_user("grace", email="grace@acme.example")
    elif who == "inactive member":
        user = make_user(account, "grace", Membership.Role.OWNER, "grace@acme.example")
        user.is_active = False
        user.save(update_fields=["is_active"])
    users_before = get_user_model().objects.count()
    provider.claims = {"sub": "acme|2002", "email": "grace@acme.example", "email_verified": True}

    page = _refusal(_sign_in(client, provider))

    assert (
        "There is no Meterdesk account for grace@acme.example. "
        "Ask your account owner for an invitation." in page
    )
    assert get_user_model().objects.count() == users_before
    assert not SocialAccount.objects.exists() and _signed_in_user_id(client) is None


def test_two_members_with_the_same_e_mail_are_refused(client, provider, member):
    other = Account.objects.create(name="Bravo", billing_email="billing@bravo.example")
    make_user(other, "ada2", Membership.Role.OWNER, "ada@acme.example")
    provider.claims = {"sub": "acme|1001", "email": "ada@acme.example", "email_verified": True}
    page = _refusal(_sign_in(client, provider))
    assert "More than one Meterdesk sign-in uses ada@acme.example" in page
    assert _signed_in_user_id(client) is None and not SocialAccount.objects.exists()


@pytest.mark.parametrize("verified", [False, "false", None])
def test_an_unverified_e_mail_is_refused(client, provider, member, verified):
    provider.claims = {"sub": "acme|1001", "email": "ada@acme.example"}
    if verified is not None:  # None: the claim is left out
        provider.claims["email_verified"] = verified
    page = _refusal(_sign_in(client, provider))
    assert "Acme SSO has not verified the e-mail address ada@acme.example" in page
    assert _signed_in_user_id(client) is None and not SocialAccount.objects.exists()


def test_a_wrong_state_is_refused_before_the_code_is_used(client, provider, member):
    provider.claims = {"sub": "acme|1001", "email": "ada@acme.example", "email_verified": True}
    page = _refusal(_sign_in(client, provider, state="forged-state"))
    assert "Signing in with Acme SSO did not complete." in page
    assert provider.token_calls == []  # the code was never exchanged
    assert _signed_in_user_id(client) is None


def test_a_provider_error_is_refused(client, provider, member):
    client.post(LOGIN_PATH, {"process": "login"})
    state = client.session["socialaccount_states"]
    [state_id] = state.keys()
    response = client.get(f"{CALLBACK_PATH}?error=access_denied&state={state_id}")
    assert "did not complete" in _refusal(response) and _signed_in_user_id(client) is None


def test_a_linked_identity_is_refused_once_its_member_is_removed(client, provider, member):
    provider.claims = {"sub": "acme|1001", "email": "ada@acme.example", "email_verified": True}
    assert _sign_in(client, provider).status_code == 302
    client.logout()
    Membership.objects.filter(user=member).delete()
    page = _refusal(_sign_in(client, provider))
    assert "There is no Meterdesk account for ada@acme.example" in page
    assert _signed_in_user_id(client) is None


def test_a_linked_identity_carrying_another_members_e_mail_is_refused(client, provider, member):
    provider.claims = {"sub": "acme|1001", "email": "ada@acme.example", "email_verified": True}
    assert _sign_in(client, provider).status_code == 302
    client.logout()
    other = Account.objects.create(name="Bravo", billing_email="billing@bravo.example")
    make_user(other, "bob", Membership.Role.OWNER, "bob@bravo.example")
    provider.claims["email"] = "bob@bravo.example"  # changed at the provider
    page = _refusal(_sign_in(client, provider))
    assert "belongs to another Meterdesk sign-in than bob@bravo.example" in page
    assert _signed_in_user_id(client) is None


def test_only_sign_in_no_connect_to_the_signed_in_user(client, provider, member):
    other = Account.objects.create(name="Bravo", billing_email="billing@bravo.example")
    client.force_login(make_user(other, "bob", Membership.Role.OWNER, "bob@bravo.example"))
    provider.claims = {"sub": "acme|1001", "email": "ada@acme.example", "email_verified": True}
    started = client.post(LOGIN_PATH, {"process": "connect"})
    answer = requests.get(started["Location"], allow_redirects=False, timeout=5)
    back = urlsplit(answer.headers["Location"])
    assert _refusal(client.get(f"{back.path}?{back.query}"))
    assert not SocialAccount.objects.exists()


def test_the_login_page_has_the_button_when_enabled(client, provider):
    html = client.get("/accounts/login/?next=/dashboard/credits/").content.decode()
    assert f'<form method="post" action="{LOGIN_PATH}" class="sso">' in html
    assert ">Sign in with Acme SSO</button>" in html
    assert '<input type="hidden" name="next" value="/dashboard/credits/">' in html
    # A GET on the provider's login URL asks to confirm with a POST (no sign-in on GET).
    confirm = client.get(LOGIN_PATH)
    assert confirm.status_code == 200 and b"Sign in with Acme SSO" in confirm.content
    assert b'<form method="post">' in confirm.content


def test_apps_stored_in_the_database_are_ignored(client, provider):
    SocialApp.objects.create(
        provider="openid_connect", provider_id="rogue", name="Rogue", client_id="x",
        secret="y", settings={"server_url": provider.issuer},
    )  # fmt: skip
    assert client.post("/sso/oidc/rogue/login/", {"process": "login"}).status_code == 404


def test_sso_urls_are_outside_the_role_checked_namespaces(provider):
    # tests/dashboards/test_permissions.py's table covers `dashboards` and `billing`; the
    # sign-in URLs are in neither (they are allauth's, unnamespaced), so need no row there.
    match = resolve(CALLBACK_PATH)
    assert match.url_name == "openid_connect_callback" and match.namespaces == []
    assert reverse("openid_connect_login", kwargs={"provider_id": PROVIDER_ID}) == LOGIN_PATH


def test_off_by_default(client, fake_provider):
    assert not oidc_enabled()
    for path in (LOGIN_PATH, CALLBACK_PATH, "/sso/"):
        with pytest.raises(Resolver404):
            resolve(path)
        assert client.get(path).status_code == 404
    with pytest.raises(NoReverseMatch):
        reverse("openid_connect_login", kwargs={"provider_id": PROVIDER_ID})
    assert "/sso/" not in str(get_resolver().reverse_dict)
    html = client.get("/accounts/login/").content.decode()
    assert "Sign in with" not in html and "sso" not in html.lower()
    # Django's own sign-in pages stay where they were; allauth's account pages are absent.
    assert reverse("login") == "/accounts/login/"
    assert reverse("password_reset") == "/accounts/password-reset/"
    with pytest.raises(NoReverseMatch):
        reverse("account_login")
    # Its admin pages: none (social accounts only show when sign-in with OIDC is on).
    assert not [
        m for m in admin.site._registry if m._meta.app_label in ("account", "socialaccount")
    ]


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_sign_in_with_the_provider_in_a_browser(live_server, page, provider):
    """Chromium presses the button, passes the provider and lands on the dashboard; an
    unknown address gets the refusal page. Screenshots under var/screenshots/."""
    account = Account.objects.create(name="Acme Analytics", billing_email="billing@acme.example")
    make_user(account, "ada", Membership.Role.OWNER, "ada@acme.example")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 800})
        page.goto(f"{live_server.url}/accounts/login/")
        page.screenshot(path=str(SCREENSHOTS / f"login-sso-{width}.png"), full_page=True)
        fits = "() => document.documentElement.scrollWidth <= window.innerWidth + 1"
        assert page.evaluate(fits), width
        button = page.get_by_role("button", name="Sign in with Acme SSO", exact=True)
        password_button = page.get_by_role("button", name="Sign in", exact=True)
        # Full width under the password form, like its button.
        assert button.bounding_box()["width"] == password_button.bounding_box()["width"]
        assert button.bounding_box()["y"] > password_button.bounding_box()["y"]

    provider.claims = {"sub": "acme|1001", "email": "ada@acme.example", "email_verified": True}
    page.get_by_role("button", name="Sign in with Acme SSO", exact=True).click()
    page.wait_for_url(f"{live_server.url}/dashboard/")
    assert page.get_by_role("heading", level=1).inner_text() == "Acme Analytics"
    assert page.locator(".who").inner_text() == "ada"

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{live_server.url}/accounts/login/")
    provider.claims = {"sub": "acme|3003", "email": "eve@else.example", "email_verified": True}
    page.get_by_role("button", name="Sign in with Acme SSO", exact=True).click()
    page.wait_for_url(f"{live_server.url}{CALLBACK_PATH}**")
    assert page.get_by_test_id("sso-refused").inner_text() == (
        "There is no Meterdesk account for eve@else.example. "
        "Ask your account owner for an invitation."
    )
    page.screenshot(path=str(SCREENSHOTS / "sso-refused-390.png"), full_page=True)
