"""Acceptance 5: the usage widget in an iframe on another origin, in Chromium.

The operator's app is a tiny page served by ``http.server`` on 127.0.0.1 (its own port);
Meterdesk is the live server on ``localhost``: another host and port, so another origin
(and another site: the widget gets no cookie of Meterdesk's). The operator's backend
mints the token over HTTP with its key; the page frames ``/embed/usage?token=...``.

- the app's origin in EMBED_ALLOWED_ORIGINS: the frame shows the customer's usage cards
  and chart;
- not in it: Chromium refuses to render the frame (CSP frame-ancestors) and says so in
  the console;
- an expired token: the frame shows the refusal (403).

Accounts and amounts as in tests/dashboards/test_embed.py: Kuwait Traders (kwd, Starter)
used 3,985 API calls on Mar 2 x 0.31 fils = 1,235.35 -> 1,235 fils = KWD 1.235; now is
Mar 5 00:00 UTC (ticking, for the live server). Screenshots in
var/screenshots/embed-*.png, the widget 600 px wide.
"""

import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
import time_machine

from tests.conftest import ROOT
from tests.dashboards.test_embed import NOW, accounts  # noqa: F401
from usage.services.keys import ingest_key_create

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
SCREENSHOTS = ROOT / "var" / "screenshots"


class OperatorApp:
    """The operator's own web app: serves whatever page the test gives it, on 127.0.0.1."""

    def __init__(self):
        self.html = "<!doctype html><title>empty</title>"
        app = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                body = app.html.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def show_widget(self, url: str) -> None:
        self.html = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Kuwait Traders · Acme app</title></head>
<body style="margin:0;padding:16px;font-family:system-ui,sans-serif;background:#f1f3f5">
  <h1 style="font-size:18px;margin:0 0 12px">Acme app: your usage this month</h1>
  <iframe id="widget" title="Usage" src="{url}" width="600" height="1010"
          style="border:1px solid #ced4da;border-radius:8px;background:#fff"></iframe>
</body></html>"""


@pytest.fixture
def operator_app():
    app = OperatorApp()
    app.thread.start()
    yield app
    app.server.shutdown()
    app.server.server_close()


@pytest.fixture
def widget_page(browser):
    context = browser.new_context(viewport={"width": 660, "height": 1280})
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    page.console_messages = console
    yield page
    context.close()


def _mint(live_server, key: str, customer: str, **extra) -> str:
    """What the operator's backend does: POST /api/v1/embed_tokens with its key."""
    response = requests.post(
        f"{live_server.url}/api/v1/embed_tokens",
        json={"customer": customer, **extra},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return response.json()["token"]


def _frame(page):
    handle = page.locator("#widget").element_handle()
    return handle.content_frame()


def _text(locator) -> str:
    return " ".join(locator.inner_text().split())


def test_the_widget_renders_in_an_iframe_of_an_allowed_origin(
    live_server,
    widget_page,
    operator_app,
    accounts,  # noqa: F811
    settings,
):
    kuwait, _ = accounts
    assert live_server.url.startswith("http://localhost:")  # another origin than the app
    settings.EMBED_ALLOWED_ORIGINS = [operator_app.origin]
    _, key = ingest_key_create(name="operator backend")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with time_machine.travel(NOW, tick=True):
        token = _mint(live_server, key, kuwait.djstripe_customers.get().id)
        operator_app.show_widget(f"{live_server.url}/embed/usage?token={token}")
        widget_page.goto(f"{operator_app.origin}/")
        frame = widget_page.frame_locator("#widget")
        frame.get_by_test_id("usage-api_calls").wait_for()
        # 3,985 calls x 0.31 fils = 1,235.35 -> 1,235 fils = KWD 1.235.
        assert _text(frame.get_by_test_id("usage-api_calls")) == "3,985"
        assert _text(frame.get_by_test_id("cost-so-far")) == "KWD 1.235"
        assert _text(frame.get_by_test_id("cost-api_calls")) == "KWD 1.235"
        assert _text(frame.locator("h1")) == "Kuwait Traders"
        # The chart loaded its JSON with the token, inside the frame.
        inner = _frame(widget_page)
        inner.wait_for_function(
            "() => { const c = document.getElementById('chart-api_calls');"
            " return c && Number(c.dataset.total) === 3985 && Chart.getChart(c); }",
            timeout=15_000,
        )
        # Nothing to click into the portal, no form, and no cookie set for the widget.
        assert inner.locator("a, form, nav").count() == 0
        assert widget_page.context.cookies() == []
        # The widget fits its 600 px: no horizontal scrolling inside the frame.
        assert inner.evaluate("() => document.documentElement.scrollWidth") <= 600
        widget_page.screenshot(path=str(SCREENSHOTS / "embed-allowed-600.png"), full_page=True)
    assert not [m for m in widget_page.console_messages if "frame-ancestors" in m]


def test_an_origin_not_allowed_is_refused_by_the_browser(
    live_server,
    widget_page,
    operator_app,
    accounts,  # noqa: F811
    settings,
):
    kuwait, _ = accounts
    settings.EMBED_ALLOWED_ORIGINS = ["https://app.example.com"]  # not the app's origin
    _, key = ingest_key_create(name="operator backend")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with time_machine.travel(NOW, tick=True):
        token = _mint(live_server, key, kuwait.djstripe_customers.get().id)
        url = f"{live_server.url}/embed/usage?token={token}"
        # The widget itself answers (200, with the policy); the browser does the refusing.
        direct = requests.get(url, timeout=30)
        assert direct.status_code == 200
        assert (
            direct.headers["Content-Security-Policy"] == "frame-ancestors https://app.example.com"
        )
        operator_app.show_widget(url)
        widget_page.goto(f"{operator_app.origin}/")
        widget_page.wait_for_function(
            "() => document.getElementById('widget') !== null", timeout=10_000
        )
        refused = None
        for _ in range(100):
            refused = [m for m in widget_page.console_messages if "frame-ancestors" in m]
            if refused:
                break
            widget_page.wait_for_timeout(100)
        assert refused, widget_page.console_messages
        assert "https://app.example.com" in refused[0]
        # The frame holds Chromium's error page, not the widget.
        inner = _frame(widget_page)
        assert not inner.url.startswith(live_server.url)
        assert inner.locator("[data-testid=embed-usage]").count() == 0
        assert "Kuwait" not in (
            inner.evaluate("() => document.body ? document.body.innerText : ''")
        )
        widget_page.screenshot(path=str(SCREENSHOTS / "embed-refused-origin.png"), full_page=True)


def test_an_expired_token_shows_the_refusal(
    live_server,
    widget_page,
    operator_app,
    accounts,  # noqa: F811
    settings,
):
    kuwait, _ = accounts
    settings.EMBED_ALLOWED_ORIGINS = [operator_app.origin]
    _, key = ingest_key_create(name="operator backend")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with time_machine.travel(NOW, tick=True):
        token = _mint(live_server, key, kuwait.djstripe_customers.get().id, ttl_seconds=60)
    operator_app.show_widget(f"{live_server.url}/embed/usage?token={token}")
    # 61 s later: past the token's 60 s.
    with time_machine.travel(NOW + timedelta(seconds=61), tick=True):
        response = widget_page.request.get(f"{live_server.url}/embed/usage?token={token}")
        assert response.status == 403
        widget_page.goto(f"{operator_app.origin}/")
        frame = widget_page.frame_locator("#widget")
        frame.get_by_test_id("embed-refused").wait_for()
        assert _text(frame.get_by_role("alert")) == (
            "This usage view has expired. Reload the page around it to see your usage again."
        )
        assert frame.get_by_test_id("usage-api_calls").count() == 0
        widget_page.screenshot(path=str(SCREENSHOTS / "embed-expired.png"))
