"""Viewers (``Membership.Role.MEMBER``) and money, issue 18's permission gaps:

- viewers do not manage alert rules: a POST to add or remove one is a 403 and writes
  nothing, whatever ``BILLING_VIEWERS_SEE_AMOUNTS`` says; they still see the page;
- when the operator hides amounts from viewers (``BILLING_VIEWERS_SEE_AMOUNTS=false``),
  the pages that are mostly money (invoices, statements and their CSVs, an invoice line's
  drill-down, credits) are a 403 with a message saying why; the budgets page keeps the
  units budgets' cards and drops the spend budget's; the alerts page shows no spend or
  credit figure and no spend or credit rule.

Owners, billing members and staff are unchanged (checked beside each refusal). The world
is tests/dashboards/test_permissions.py's: account A on the Trio plan, its September
invoice final, requests on Oct 1 2026 01:01.
"""

import pytest
import time_machine
from django.urls import reverse

from billing.models import Membership, Meter
from tests.dashboards.test_drilldown import trio_plan  # noqa: F401
from tests.dashboards.test_permissions import WHEN, world  # noqa: F401
from usage.models import AlertRule, Budget
from usage.services.budgets import budget_set

pytestmark = pytest.mark.django_db
Role = Membership.Role
HIDDEN = "amounts, which this account&#x27;s viewers don&#x27;t see"  # the 403's message


# Alert rules ----------------------------------------------------------------------------

# $5 as typed in the form: 5 x 100 = 500 minor units (USD has 2 decimals).
SPEND_RULE = {"kind": "spend", "amount": "5"}


@pytest.mark.parametrize("viewers_see_amounts", [True, False])
def test_viewers_may_not_add_or_remove_alert_rules(client, world, settings, viewers_see_amounts):  # noqa: F811
    settings.BILLING_VIEWERS_SEE_AMOUNTS = viewers_see_amounts
    usage_rule = AlertRule.objects.create(
        account=world.a,
        kind="usage_share",
        meter=Meter.objects.get(event_name="api_calls"),
        threshold_percent=80,
    )
    before = sorted(AlertRule.objects.filter(account=world.a).values_list("pk", flat=True))
    client.force_login(world.users[Role.MEMBER])
    with time_machine.travel(WHEN, tick=False):
        add = client.post(reverse("dashboards:alert_add"), SPEND_RULE)
        add_htmx = client.post(reverse("dashboards:alert_add"), SPEND_RULE, HTTP_HX_REQUEST="true")
        remove = client.post(reverse("dashboards:alert_remove", args=[usage_rule.pk]))
        page = client.get(reverse("dashboards:alerts"))
    assert (add.status_code, add_htmx.status_code, remove.status_code) == (403, 403, 403)
    assert "Only owners and billing members may change alert rules." in add.content.decode()
    after = sorted(AlertRule.objects.filter(account=world.a).values_list("pk", flat=True))
    assert after == before  # nothing added, nothing removed
    # The page still shows the rule, without the forms.
    html = page.content.decode()
    assert page.status_code == 200
    assert "API calls reaches 80% of the allowance" in html
    assert 'data-testid="alert-form"' not in html and "Remove this rule" not in html
    assert 'data-testid="rules-read-only"' in html

    # The owner's same POSTs go through: a $5.00 spend rule (500 minor units), then the
    # usage rule removed.
    client.force_login(world.users[Role.OWNER])
    with time_machine.travel(WHEN, tick=False):
        assert client.post(reverse("dashboards:alert_add"), SPEND_RULE).status_code == 302
        removed = client.post(reverse("dashboards:alert_remove", args=[usage_rule.pk]))
    assert removed.status_code == 302
    rules = AlertRule.objects.filter(account=world.a)
    assert [(r.kind, r.amount) for r in rules if r.pk not in before] == [("spend", 500)]
    assert not rules.filter(pk=usage_rule.pk).exists()


def test_billing_members_still_manage_alert_rules(client, world):  # noqa: F811
    client.force_login(world.users[Role.BILLING])
    with time_machine.travel(WHEN, tick=False):
        page = client.get(reverse("dashboards:alerts")).content.decode()
        added = client.post(reverse("dashboards:alert_add"), SPEND_RULE)
    assert 'data-testid="alert-form"' in page
    assert added.status_code == 302
    assert AlertRule.objects.filter(account=world.a, kind="spend", amount=500).exists()


# The money pages --------------------------------------------------------------------


def _inv(w):
    return [w.invoice.id]


def _line(w):
    return [w.invoice.id, w.line.id]


MONEY_PAGES = [
    ("dashboards:invoices", None),
    ("dashboards:statement_open", None),
    ("dashboards:statement_open_csv", None),
    ("dashboards:statement", _inv),
    ("dashboards:statement_csv", _inv),
    ("dashboards:drilldown_line", _line),
    ("dashboards:drilldown_day", lambda w: [*_line(w), "2026-09-01"]),
    ("dashboards:drilldown_hour", lambda w: [*_line(w), "2026-09-01T10"]),
    ("dashboards:credits", None),
]


@pytest.mark.parametrize(("name", "args"), MONEY_PAGES)
def test_money_pages_refuse_viewers_when_amounts_are_hidden(client, world, settings, name, args):  # noqa: F811
    url = reverse(name, args=args(world) if args else None)
    settings.BILLING_VIEWERS_SEE_AMOUNTS = False
    answers = {}
    with time_machine.travel(WHEN, tick=False):
        for role, user in world.users.items():
            client.force_login(user)
            answers[role] = client.get(url)
    viewer = answers.pop(Role.MEMBER)
    assert viewer.status_code == 403
    assert HIDDEN in viewer.content.decode()  # the 403 page says why
    assert {role: r.status_code for role, r in answers.items()} == {
        Role.OWNER: 200,
        Role.BILLING: 200,
    }
    # Once the operator lets viewers see amounts, the page is theirs again.
    settings.BILLING_VIEWERS_SEE_AMOUNTS = True
    client.force_login(world.users[Role.MEMBER])
    with time_machine.travel(WHEN, tick=False):
        assert client.get(url).status_code == 200


def test_staff_viewing_as_the_customer_still_see_the_money_pages(
    client,
    world,  # noqa: F811
    settings,
    django_user_model,
):
    from django.contrib.auth.models import Permission

    settings.BILLING_VIEWERS_SEE_AMOUNTS = False
    staff = django_user_model.objects.create_user("staff-1", password="pw-staff-1-123")
    staff.is_staff = True
    staff.save()
    staff.user_permissions.add(
        Permission.objects.get(codename="view_account", content_type__app_label="billing")
    )
    client.force_login(staff)
    with time_machine.travel(WHEN, tick=False):
        statement = client.get(f"{reverse('dashboards:statement_open')}?account={world.a.pk}")
        credits = client.get(f"{reverse('dashboards:credits')}?account={world.a.pk}")
    assert (statement.status_code, credits.status_code) == (200, 200)


# Budgets and alerts pages -----------------------------------------------------------


def test_budgets_page_keeps_units_budgets_and_drops_the_spend_budget(client, world, settings):  # noqa: F811
    settings.BILLING_VIEWERS_SEE_AMOUNTS = False
    Budget.objects.filter(account=world.a).delete()
    budget_set(
        account=world.a, kind="units", meter=Meter.objects.get(event_name="api_calls"),
        limit=20_000, warn_levels=[80], hard_cap=False, source=Budget.Source.STAFF,
    )  # fmt: skip
    # $500.00 for the whole bill: 50_000 minor units.
    budget_set(
        account=world.a, kind="spend", limit=50_000, warn_levels=[80], hard_cap=False,
        source=Budget.Source.STAFF,
    )  # fmt: skip
    pages = {}
    with time_machine.travel(WHEN, tick=False):
        for role in (Role.MEMBER, Role.OWNER):
            client.force_login(world.users[role])
            pages[role] = client.get(reverse("dashboards:budgets")).content.decode()
            pages[(role, "cards")] = client.get(
                reverse("dashboards:budgets") + "?part=cards", HTTP_HX_REQUEST="true"
            ).content.decode()
    for viewer_html in (pages[Role.MEMBER], pages[(Role.MEMBER, "cards")]):
        assert 'data-budget="api_calls"' in viewer_html
        assert 'data-budget="spend"' not in viewer_html
        assert "$500.00" not in viewer_html and "$" not in viewer_html
    for owner_html in (pages[Role.OWNER], pages[(Role.OWNER, "cards")]):
        assert 'data-budget="api_calls"' in owner_html
        assert 'data-budget="spend"' in owner_html
        assert "$500.00" in owner_html


def test_alerts_page_shows_viewers_no_money_when_amounts_are_hidden(client, world, settings):  # noqa: F811
    settings.BILLING_VIEWERS_SEE_AMOUNTS = False
    api_calls = Meter.objects.get(event_name="api_calls")
    AlertRule.objects.create(
        account=world.a, kind="usage_share", meter=api_calls, threshold_percent=80
    )
    # $12.34 = 1234 minor units; $3.00 = 300.
    AlertRule.objects.create(account=world.a, kind="spend", amount=1234, currency="usd")
    AlertRule.objects.create(account=world.a, kind="credits_below", amount=300, currency="usd")
    pages = {}
    with time_machine.travel(WHEN, tick=False):
        for role in (Role.MEMBER, Role.OWNER):
            client.force_login(world.users[role])
            pages[role] = client.get(reverse("dashboards:alerts")).content.decode()
    viewer, owner = pages[Role.MEMBER], pages[Role.OWNER]
    assert "API calls reaches 80% of the allowance" in viewer  # usage rules stay
    assert "$" not in viewer
    for money in ('data-testid="spend-so-far"', 'data-testid="credits-left"',
                  "Spend this period reaches", "Credit balance falls below"):  # fmt: skip
        assert money not in viewer, money
    # The owner sees them all: the rules' amounts and the spend so far.
    assert "Spend this period reaches $12.34" in owner
    assert "Credit balance falls below $3.00" in owner
    assert 'data-testid="spend-so-far"' in owner


def test_nav_hides_the_money_pages_from_viewers_when_amounts_are_hidden(client, world, settings):  # noqa: F811
    settings.BILLING_VIEWERS_SEE_AMOUNTS = False
    with time_machine.travel(WHEN, tick=False):
        client.force_login(world.users[Role.MEMBER])
        viewer = client.get(reverse("dashboards:alerts")).content.decode()
        client.force_login(world.users[Role.OWNER])
        owner = client.get(reverse("dashboards:alerts")).content.decode()
    for page in ("dashboards:invoices", "dashboards:credits", "dashboards:simulator"):
        link = f'href="{reverse(page)}"'
        assert link in owner
        assert link not in viewer  # a link to a 403 would only confuse them
    assert f'href="{reverse("dashboards:members")}"' in viewer
