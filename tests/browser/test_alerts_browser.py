"""The alert form in headless Chromium (issue 14, item 4): each rule kind with bad and good
input, only the chosen kind's fields shown, and the same form without JavaScript; the
charts' axes and failure messages (item 6); the login error at phone width (item 9)."""

import pytest

from tests.conftest import ROOT
from tests.factories import make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
SCREENSHOTS = ROOT / "var" / "screenshots"


def _log_in(page, live_server, username: str, next_path: str = "/dashboard/") -> None:
    page.goto(f"{live_server.url}/accounts/login/?next={next_path}")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(f"pw-{username}-123")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live_server.url}{next_path}")


def _errors(form) -> list[str]:
    return [e.strip() for e in form.locator(".error").all_inner_texts()]


def _add(page, *, kind: str, fill: dict, expect_error: str | None = None, expect_rule: str = ""):
    form = page.get_by_test_id("alert-form")
    form.get_by_label("Alert me when").select_option(kind)
    usage, spend = form.get_by_test_id("usage-fields"), form.get_by_test_id("spend-fields")
    if kind.endswith("usage_share"):
        assert usage.is_visible() and not spend.is_visible()
    else:
        assert spend.is_visible() and not usage.is_visible()
    for label, value in fill.items():
        field = form.get_by_label(label)
        if field.evaluate("e => e.tagName") == "SELECT":
            field.select_option(label=value)
        else:
            field.fill(value)
    form.get_by_role("button", name="Add rule").click()
    if expect_error:
        page.wait_for_function(
            "(t) => [...document.querySelectorAll('[data-testid=alert-form] .error')]"
            ".some((e) => e.innerText.includes(t))",
            arg=expect_error,
        )
        # Only the chosen kind's fields can carry errors, and they stay visible.
        assert all(page.locator("[data-testid=alert-form] .error").evaluate_all(
            "(es) => es.map((e) => e.offsetParent !== null)"
        ))  # fmt: skip
    else:
        page.get_by_test_id("rules").get_by_text(expect_rule).wait_for()
        assert _errors(page.get_by_test_id("alert-form")) == []


def test_alert_form_each_kind_bad_then_good(live_server, page, browser, pro_account):
    make_user(pro_account, "ada", email="ada@acme.example")
    _log_in(page, live_server, "ada", "/dashboard/alerts/")
    # Pro: $99.00 base + usage $31.00 (500 calls over at 0.2¢ = $1.00, 3 seats x $10).
    spend = page.get_by_test_id("spend-so-far").inner_text()
    assert "Spend so far: $130.00 = $99.00 base + $31.00 usage" in spend

    share = "Share of the included allowance (%)"
    _add(page, kind="usage_share", fill={share: "0"}, expect_error="Choose a meter.")
    assert "Enter a share between 1% and 1000%." in _errors(page.get_by_test_id("alert-form"))
    _add(page, kind="usage_share", fill={"Meter": "API calls", share: "90"},
         expect_rule="API calls reaches 90% of the allowance")  # fmt: skip
    _add(page, kind="projected_usage_share", fill={"Meter": "API calls", share: "5000"},
         expect_error="Enter a share between 1% and 1000%.")  # fmt: skip
    _add(page, kind="projected_usage_share", fill={"Meter": "API calls", share: "120"},
         expect_rule="API calls is projected to reach 120% of the allowance")  # fmt: skip
    # A share of 0 left in the (hidden) usage fields does not block a spend rule.
    page.get_by_test_id("alert-form").get_by_label("Alert me when").select_option("usage_share")
    page.get_by_test_id("alert-form").get_by_label(share).fill("0")
    _add(page, kind="spend", fill={"Amount (USD)": "0"}, expect_error="Enter an amount above zero.")
    _add(page, kind="spend", fill={"Amount (USD)": "150"},
         expect_rule="Spend this period reaches $150.00")  # fmt: skip
    _add(page, kind="projected_spend", fill={"Amount (USD)": "-5"},
         expect_error="Enter an amount above zero.")  # fmt: skip
    _add(page, kind="projected_spend", fill={"Amount (USD)": "200.50"},
         expect_rule="Spend this period is projected to reach $200.50")  # fmt: skip

    # Screenshots named alerts-form-*: test_screenshots writes alerts-<width>.png of the
    # page without rules; these show the form with a rule of each kind.
    page.reload()
    page.get_by_test_id("alert-form").get_by_label("Alert me when").select_option("spend")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "alerts-form-1280.png"), full_page=True)

    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    small = phone.new_page()
    _log_in(small, live_server, "ada", "/dashboard/alerts/")
    small.screenshot(path=str(SCREENSHOTS / "alerts-form-390.png"), full_page=True)
    phone.close()


def test_alert_form_without_javascript(live_server, browser, pro_account):
    make_user(pro_account, "bob", email="bob@acme.example")
    context = browser.new_context(
        viewport={"width": 1280, "height": 900}, java_script_enabled=False
    )
    page = context.new_page()
    _log_in(page, live_server, "bob", "/dashboard/alerts/")
    form = page.get_by_test_id("alert-form")
    # Both groups show, each under its legend; the server reads only the chosen kind's.
    assert form.get_by_test_id("usage-fields").is_visible()
    assert form.get_by_test_id("spend-fields").is_visible()
    form.get_by_label("Alert me when").select_option("spend")
    form.get_by_label("Share of the included allowance (%)").fill("0")
    form.get_by_label("Amount (USD)").fill("175")
    form.get_by_role("button", name="Add rule").click()
    page.wait_for_url(f"{live_server.url}/dashboard/alerts/")
    assert "Spend this period reaches $175.00" in page.get_by_test_id("rules").inner_text()
    context.close()


def test_charts_axes_and_failures(live_server, page, pro_account):
    make_user(pro_account, "cy", email="cy@acme.example")
    _log_in(page, live_server, "cy")
    page.wait_for_function(
        "() => ['api_calls', 'seats'].every((n) => {"
        " const c = document.getElementById('chart-' + n);"
        " return c && c.dataset.total && Chart.getChart(c); })",
        timeout=10_000,
    )
    calls = page.evaluate(
        """() => { const c = Chart.getChart(document.getElementById('chart-api_calls'));
            return { axes: Object.keys(c.options.scales).sort(),
                     left: c.options.scales.y.title.text, right: c.options.scales.y2.title.text,
                     bars: c.data.datasets.filter((d) => d.type === 'bar').map((d) => d.yAxisID),
                     lines: c.data.datasets.filter((d) => d.type === 'line')
                       .map((d) => d.yAxisID) }; }"""
    )
    assert calls["axes"] == ["x", "y", "y2"]
    assert calls["left"] == "calls per day" and calls["right"] == "calls this period (cumulative)"
    assert calls["bars"] == ["y"] and set(calls["lines"]) == {"y2"}
    seats = page.evaluate(
        """() => { const c = Chart.getChart(document.getElementById('chart-seats'));
            return { precision: c.options.scales.y.ticks.precision,
                     title: c.options.scales.y.title.text,
                     labels: c.data.datasets.map((d) => d.label),
                     ticks: c.scales.y.ticks.map((t) => t.value) }; }"""
    )
    assert seats["precision"] == 0 and seats["title"] == "seats"
    assert seats["labels"][0] == "Value (seats)" and not any(
        "umulative" in x for x in seats["labels"]
    )
    assert all(float(t).is_integer() for t in seats["ticks"])  # no 0.5 seats
    caption = page.locator("figure.chart figcaption").nth(1).inner_text()
    assert "value (seats)" in caption and "cumulative" not in caption
    page.locator(".charts").scroll_into_view_if_needed()
    page.screenshot(path=str(SCREENSHOTS / "dashboard-charts-1280.png"), full_page=True)

    # The chart JSON and the numbers' refresh start failing.
    page.route("**/dashboard/chart/**", lambda route: route.fulfill(status=500, body="boom"))
    page.route("**/dashboard/?period=*", lambda route: route.fulfill(status=500, body="boom"))
    page.get_by_role("button", name="Per hour").click()
    page.get_by_text("Couldn't load the chart — retrying").first.wait_for(timeout=5_000)
    notice = page.get_by_test_id("stale-notice")
    notice.wait_for(timeout=12_000)  # the next 5 s poll fails
    assert notice.inner_text().startswith("Numbers may be out of date (last updated ")
    assert " UTC)" in notice.inner_text()
    # Back to normal: the chart and the numbers recover without a reload.
    page.unroute("**/dashboard/chart/**")
    page.unroute("**/dashboard/?period=*")
    page.wait_for_function("() => !document.getElementById('stale-notice')", timeout=12_000)
    page.wait_for_function("() => !document.querySelector('.chart-message')", timeout=12_000)


def test_login_error_keeps_the_username_on_a_phone(live_server, browser, pro_account):
    make_user(pro_account, "dee", email="dee@acme.example")
    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = phone.new_page()
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill("dee")
    page.get_by_label("Password").fill("not it")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("alert").wait_for()
    assert page.get_by_label("Username").input_value() == "dee"
    assert page.get_by_label("Password").input_value() == ""
    assert page.get_by_role("link", name="Forgot your password?").is_visible()
    page.screenshot(path=str(SCREENSHOTS / "login-error-390.png"), full_page=True)
    phone.close()
