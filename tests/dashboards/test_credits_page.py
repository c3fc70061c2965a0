"""The Credits page (grants, history, top-up, automatic top-up) and the dashboard's
Credits card.

Starter at 0.1¢ a call, period Mar 1 - Apr 1 (test clock), pinned at Mar 5 00:00 with
2,000 calls = 200¢ of usage (see ``tests/usage/test_credit_balance``).
"""

import re
from datetime import UTC, datetime

import pytest
import time_machine
from django.test import Client
from django.urls import reverse

from billing.models import Membership
from billing.models_credits import AutoTopUp, CreditBalanceTransaction, CreditGrant
from tests.factories import make_user
from tests.usage.test_credit_balance import calls, make_grant, starter  # noqa: F401

pytestmark = pytest.mark.django_db

T = datetime(2026, 3, 5, tzinfo=UTC)
PAGE = "dashboards:credits"
TOP_UP = "dashboards:credits_top_up"
AUTO = "dashboards:credits_auto_top_up"


@pytest.fixture
def credited(starter):  # noqa: F811
    """A $5.00 promotional grant with a $1.50 debit applied to an earlier invoice, and a
    $3.00 one expiring Mar 20; 2,000 calls this period."""
    welcome = make_grant(starter, amount=500, stripe_id="credgr_welcome")
    CreditBalanceTransaction.objects.create(
        stripe_id="cbtxn_applied",
        grant=welcome,
        account=starter,
        type="debit",
        kind="credits_applied",
        amount=150,
        currency="usd",
        effective_at=datetime(2026, 3, 1, 1, tzinfo=UTC),
        invoice_id="in_earlier",
    )
    make_grant(
        starter,
        amount=300,
        stripe_id="credgr_spring",
        name="Spring promo",
        expires_at=datetime(2026, 3, 20, tzinfo=UTC),
    )
    with time_machine.travel(T, tick=False):
        calls(starter, 2_000, at=datetime(2026, 3, 2, tzinfo=UTC), now=T, prefix="p")
    return starter


def _text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def _get(client, name="dashboards:credits", **params):
    with time_machine.travel(T, tick=False):
        return client.get(reverse(name), params)


def _post(client, name, data):
    with time_machine.travel(T, tick=False):
        return client.post(reverse(name), data)


def test_the_page_lists_grants_history_and_the_forms(client, credited):
    client.force_login(make_user(credited, "ada", Membership.Role.OWNER))
    response = _get(client)
    assert response.status_code == 200
    page = _text(response.content.decode())
    # Welcome: 500 - 150 applied = 350¢ ledger; 2,000 calls x 0.1¢ = 200¢ this period
    # -> 150¢ left. Spring promo expires before the period's invoice: 300¢, not usable.
    assert "Welcome credits Promotional $5.00 $1.50 Never Active" in page
    assert "Spring promo Promotional $3.00 $3.00 Mar 20, 2026 Active" in page
    # The card: 350¢ available this period, 200¢ used, 150¢ left; 500 + 300 = 800¢ granted.
    assert "Remaining $1.50 of $3.50 for this period" in page
    assert "Used this period $2.00 from your usage so far" in page
    assert "Granted $8.00 on your active credit grants" in page
    assert "Your credits have run out" not in page
    assert "your credits run out around Mar 8" in page  # worked in the next test
    assert "$3.00 of Spring promo expires Mar 20 — before this period's invoice" in page
    # History, newest first.
    assert "Mar 1, 2026 Applied to invoice in_earlier Welcome credits −$1.50" in page
    assert "Mar 1, 2026 Credits granted Spring promo +$3.00" in page
    assert 'data-testid="top-up-form"' in response.content.decode()
    assert 'data-testid="auto-top-up-form"' in response.content.decode()


def test_run_out_date_on_the_page_by_hand(client, credited):
    """350¢ available, 200¢ used: 150¢ = 1,504 more calls before the first uncovered
    cent (3,504 x 0.1 = 350.4 -> 350¢; 3,505 -> 350.5 -> 351¢). 13,500 calls in 27 days
    = 500 a day: 1,505 calls take 1,505 / 500 = 3.01 days -> Mar 8."""
    client.force_login(make_user(credited, "ada", Membership.Role.OWNER))
    html = _get(client).content.decode()
    # 13,500 x s // 2,332,800 >= 1,505 <=> s >= 260,064 s = 4,334.4 min -> 4,335 min =
    # 3 d 0 h 15 min after Mar 5 00:00.
    assert 'data-run-out="2026-03-08T00:15:00+00:00"' in html
    assert "run out around <strong>Mar 8</strong>" in html


def test_top_up_errors_name_the_field_with_400(client, credited):
    client.force_login(make_user(credited, "ada", Membership.Role.OWNER))
    cases = {
        "": "Enter an amount, like 50 or 49.50.",
        "abc": "Enter an amount, like 50 or 49.50.",
        "4.99": "Enter at least 5.00 USD.",
        "10000.01": "Enter at most 10,000.00 USD.",
    }
    for amount, message in cases.items():
        response = _post(client, TOP_UP, {"amount": amount})
        assert response.status_code == 400, amount
        html = response.content.decode()
        error = re.search(r'<p class="error" id="id_amount-error"[^>]*>([^<]*)</p>', html)
        assert error and error[1] == message, (amount, error and error[1])
        assert 'value="' + amount + '"' in html or amount == ""  # re-rendered as typed
    assert not CreditGrant.objects.filter(source=CreditGrant.Source.TOP_UP).exists()


def test_top_up_buys_paid_credits_awaiting_payment(client, credited):
    user = make_user(credited, "ada", Membership.Role.BILLING)
    client.force_login(user)
    response = _post(client, TOP_UP, {"amount": "25.50"})
    assert response.status_code == 302 and response["Location"] == reverse(PAGE)
    [grant] = CreditGrant.objects.filter(source=CreditGrant.Source.TOP_UP)
    # 25.50 USD = 2,550¢, paid for the same.
    assert (grant.category, grant.amount, grant.purchase_amount, grant.currency) == (
        "paid",
        2_550,
        2_550,
        "usd",
    )
    assert (grant.status, grant.created_by) == (CreditGrant.Status.AWAITING_PAYMENT, user)
    page = _text(_get(client).content.decode())
    assert "Top-up Prepaid $25.50 — Never Awaiting payment" in page
    # Not counted before it is paid: the card still reads 150¢ left of 350¢.
    assert "Remaining $1.50 of $3.50 for this period" in page


def test_members_see_no_forms_and_may_not_post(client, credited):
    client.force_login(make_user(credited, "bob", Membership.Role.MEMBER))
    html = _get(client).content.decode()
    assert 'data-testid="top-up-form"' not in html
    assert "Only the account's owners and billing contacts can buy credits" in html
    assert _post(client, TOP_UP, {"amount": "50"}).status_code == 403
    post = _post(client, AUTO, {"enabled": "on", "threshold": "4", "amount": "10"})
    assert post.status_code == 403
    assert not CreditGrant.objects.filter(source=CreditGrant.Source.TOP_UP).exists()
    assert not AutoTopUp.objects.exists()


def test_posts_need_the_csrf_token(credited):
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_user(credited, "ada", Membership.Role.OWNER))
    assert _post(client, TOP_UP, {"amount": "50"}).status_code == 403
    assert not CreditGrant.objects.filter(source=CreditGrant.Source.TOP_UP).exists()


def test_auto_top_up_settings_saved_and_validated(client, credited):
    client.force_login(make_user(credited, "ada", Membership.Role.OWNER))
    bad = _post(client, AUTO, {"enabled": "on", "threshold": "-1", "amount": "2"})
    assert bad.status_code == 400
    html = bad.content.decode()
    assert re.search(r'id="id_threshold-error"[^>]*>Enter at least 0.00 USD.<', html)
    assert re.search(r'id="id_amount-error"[^>]*>Enter at least 5.00 USD.<', html)
    assert not AutoTopUp.objects.exists()
    ok = _post(client, AUTO, {"enabled": "on", "threshold": "4", "amount": "10"})
    assert ok.status_code == 302
    settings = AutoTopUp.objects.get(account=credited)
    # 4 USD = 400¢, 10 USD = 1,000¢.
    assert (settings.enabled, settings.threshold, settings.amount, settings.currency) == (
        True,
        400,
        1_000,
        "usd",
    )
    page = _text(_get(client).content.decode())
    assert "On: when the remaining balance falls below $4.00, we buy $10.00 of credits." in page
    off = _post(client, AUTO, {"threshold": "4", "amount": "10"})  # unchecked: off
    assert off.status_code == 302
    assert AutoTopUp.objects.get(account=credited).enabled is False


def test_dashboard_card_shows_the_live_balance_and_hides_without_grants(client, credited):
    client.force_login(make_user(credited, "ada", Membership.Role.OWNER))
    html = _get(client, "dashboards:home").content.decode()
    card = _text(html[html.index('data-testid="credits-card"') :])
    assert card.startswith('data-testid="credits-card"> Credits Credits and top-ups')
    assert "Remaining $1.50 of $3.50 for this period" in card
    assert reverse(PAGE) in html
    # The live partial (HTMX refresh) carries it too.
    with time_machine.travel(T, tick=False):
        partial = client.get(reverse("dashboards:home"), headers={"HX-Request": "true"})
    assert 'data-testid="credits-card"' in partial.content.decode()
    # Without grants: no card.
    CreditGrant.objects.all().delete()
    assert 'data-testid="credits-card"' not in _get(client, "dashboards:home").content.decode()


def test_staff_viewing_as_need_the_permissions_to_buy(client, credited):
    from tests.dashboards.test_view_as import _staff

    query = {"account": credited.pk}
    viewer = _staff("sam", "billing.view_account")
    client.force_login(viewer)
    with time_machine.travel(T, tick=False):
        html = client.get(reverse(PAGE), query).content.decode()
        assert 'data-testid="top-up-form"' not in html
        url = f"{reverse(TOP_UP)}?account={credited.pk}"
        # 403 naming the missing permission; nothing bought.
        assert client.post(url, {"amount": "50"}).status_code == 403
    buyer = _staff(
        "tess",
        "billing.view_account",
        "billing.add_creditgrant",
        "billing.add_autotopup",
        "billing.change_autotopup",
    )
    client.force_login(buyer)
    with time_machine.travel(T, tick=False):
        html = client.get(reverse(PAGE), query).content.decode()
        assert f'action="{reverse(TOP_UP)}?account={credited.pk}"' in html
        response = client.post(f"{reverse(TOP_UP)}?account={credited.pk}", {"amount": "50"})
    assert response.status_code == 302
    assert response["Location"] == f"{reverse(PAGE)}?account={credited.pk}"
    [grant] = CreditGrant.objects.filter(source=CreditGrant.Source.TOP_UP)
    assert (grant.amount, grant.created_by) == (5_000, buyer)  # 50 USD = 5,000¢
