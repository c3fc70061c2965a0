"""The dashboard's Budgets section (issue 16): the cards' numbers computed by hand, the
form's errors (422, by field, with their code), roles (members look, owners and billing
members change; another account's budget is a 404) and staff viewing as the customer."""

import re
from datetime import UTC, datetime

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.urls import reverse

from billing.models import Membership, Meter, Plan
from billing.services.accounts import account_create
from billing.services.stripe_sync import stripe_sync_everything
from billing.services.subscriptions import subscription_create
from billing.services.test_clocks import test_clock_advance
from tests.factories import ingest, make_user
from usage.models import Budget, PlanBudgetPolicy
from usage.services.budgets import budget_set

pytestmark = pytest.mark.django_db

STARTED = datetime(2026, 3, 14, 10, 30, tzinfo=UTC)
NOW = datetime(2026, 3, 20, 12, tzinfo=UTC)  # the period is Mar 14 10:30 - Apr 14 10:30
HTMX = {"HX-Request": "true"}
BUDGETS = reverse("dashboards:budgets")
SAVE = reverse("dashboards:budget_save")


@pytest.fixture
def subscribed(stripe_client, demo_catalog):
    """Initech on Starter (0.1¢ a call, no base fee) on a test clock."""
    clock = stripe_client.v1.test_helpers.test_clocks.create(
        {"frozen_time": int(STARTED.timestamp())}
    )
    account = account_create(name="Initech", billing_email="b@initech.example")
    subscription_create(account=account, plan=demo_catalog["starter"], test_clock=clock.id)
    test_clock_advance(client=stripe_client, clock_id=clock.id, to=NOW)
    assert not stripe_sync_everything().errors
    return account


@pytest.fixture
def starter(subscribed):
    """Initech with 8,000 calls this period."""
    with time_machine.travel(NOW, tick=False):
        ingest(subscribed.djstripe_customers.get().id, "api_calls", [1] * 8_000, "ini")
    return subscribed


@pytest.fixture
def pinned():
    with time_machine.travel(NOW, tick=False):
        yield


def _calls():
    return Meter.objects.get(event_name="api_calls")


def _owner_budgets(starter, owner):
    budget_set(account=starter, kind="units", meter=_calls(), limit=10_000,
               warn_levels=[50, 80, 100], hard_cap=True, user=owner, source="customer")  # fmt: skip
    # $10.00 = 1,000 cents, alerts only.
    budget_set(account=starter, kind="spend", limit=1_000, warn_levels=[80], hard_cap=False,
               user=owner, source="customer")  # fmt: skip


def _card(html: str, key: str) -> str:
    start = html.index(f'data-budget="{key}"')
    return " ".join(html[start : html.index("</article>", start)].split())


def test_cards_show_used_limit_percent_levels_and_reset(client, starter, pinned):
    owner = make_user(starter, "olga")
    _owner_budgets(starter, owner)
    client.force_login(owner)
    response = client.get(BUDGETS, headers=HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" not in html  # the section alone
    calls = _card(html, "api_calls")
    # 8,000 of 10,000 calls = 80%: the 50% (5,000) and 80% (8,000) levels are reached,
    # 100% (10,000) is not.
    assert "<strong>8,000</strong> of 10,000 calls used" in calls
    assert 'data-percent="80"' in calls and ">80%<" in calls
    assert re.findall(r'data-level="(\d+)" data-reached="(\w+)"', calls) == [
        ("50", "true"),
        ("80", "true"),
        ("100", "false"),
    ]
    assert 'aria-valuenow="80"' in calls and "width: 80%" in calls
    assert "Resets Apr 14, 10:30 UTC" in calls
    assert "2,000 calls left" in calls  # 10,000 - 8,000
    assert "Hard cap" in calls and "Meterdesk's API is told to stop your usage" in calls
    # Spend: 8,000 calls x 0.1¢ = 800¢ = $8.00 of $10.00 = 80%, the 80% level reached.
    spend = _card(html, "spend")
    assert "<strong>$8.00</strong> of $10.00 spent" in spend and 'data-percent="80"' in spend
    assert re.findall(r'data-level="(\d+)" data-reached="(\w+)"', spend) == [("80", "true")]
    assert "Alerts only" in spend and "nothing is stopped" in spend
    assert "$2.00 left" in spend  # 1,000¢ - 800¢ = 200¢
    # The refresh of the cards alone, and the page without HTMX.
    cards = client.get(BUDGETS, {"part": "cards"}, headers=HTMX).content.decode()
    assert cards.lstrip().startswith('<div id="budget-cards"') and "budget-form" not in cards
    page = client.get(BUDGETS).content.decode()
    assert "<html" in page and "<strong>8,000</strong> of 10,000 calls used" in page


def test_the_usage_page_loads_the_section(client, subscribed, pinned):
    client.force_login(make_user(subscribed, "olga"))
    html = client.get(reverse("dashboards:home")).content.decode()
    assert f'hx-get="{BUDGETS}" hx-trigger="load"' in html


def test_owner_sets_budgets_through_the_form(client, subscribed, pinned):
    owner = make_user(subscribed, "olga")
    client.force_login(owner)
    form = client.get(BUDGETS, headers=HTMX).content.decode()
    assert 'data-testid="budget-form"' in form and "Whole bill (USD)" in form
    response = client.post(
        SAVE,
        {"target": "api_calls", "limit": "10000", "warn_levels": "100, 50, 80%", "hard_cap": "on"},
        headers=HTMX,
    )
    assert response.status_code == 200
    assert "<strong>0</strong> of 10,000 calls used" in response.content.decode()
    budget = Budget.objects.get(kind="units")
    assert (budget.limit, budget.warn_levels, budget.hard_cap, budget.source) == (
        10_000,
        [50, 80, 100],
        True,
        "customer",
    )
    # Money typed in dollars: $250.50 = 25,050 cents. Without HTMX: a redirect.
    response = client.post(SAVE, {"target": "spend", "limit": "250.50", "warn_levels": "80"})
    assert response.status_code == 302 and response["Location"] == BUDGETS
    assert Budget.objects.get(kind="spend").limit == 25_050
    # Editing fills the form with dollars again.
    spend = Budget.objects.get(kind="spend")
    edit = client.get(BUDGETS, {"edit": spend.pk}, headers=HTMX).content.decode()
    assert 'value="250.50"' in edit and "Edit the budget for the whole bill" in edit
    assert re.search(r'<details class="budget-form-box" open>', edit)  # unfolded to edit


BAD_INPUT = [  # (changes, field, code, part of the message)
    ({"limit": "0"}, "limit", "limit_not_positive", "Enter a limit above zero."),
    ({"limit": "-5"}, "limit", "limit_not_positive", "Enter a limit above zero."),
    ({"limit": "ten"}, "limit", "invalid", "Enter a number, like 10000 or 250.50."),
    ({"limit": "10.5"}, "limit", "limit_not_whole", "Enter a whole number of units"),
    # $0.001 is 0.1 cent, half up to 0 cents: not above zero.
    ({"target": "spend", "limit": "0.001"}, "limit", "limit_not_positive", "above zero"),
    ({"warn_levels": "50, abc"}, "warn_levels", "warn_levels_invalid", "like 50, 80, 100"),
    ({"warn_levels": " , "}, "warn_levels", "required", "at least one warn level"),
    ({"warn_levels": "50, 150"}, "warn_levels", "warn_levels_range", "from 1 to 100"),
    ({"warn_levels": "80, 80"}, "warn_levels", "warn_levels_repeated", "80% is repeated"),
    ({"warn_levels": "1,2,3,4,5,6"}, "warn_levels", "warn_levels_too_many", "at most 5"),
    ({"target": "seats"}, "target", "invalid_choice", "Select a valid choice."),
    (
        {"limit": "20001"},
        "limit",
        "above_plan_maximum",
        "The Starter plan allows a limit of at most 20,000 calls.",
    ),
]


def test_bad_input_is_a_422_naming_the_field(client, subscribed, pinned):
    PlanBudgetPolicy.objects.create(
        plan=Plan.objects.get(key="starter"), kind="units", meter=_calls(), max_limit=20_000
    )
    client.force_login(make_user(subscribed, "olga"))
    for changes, field, code, message in BAD_INPUT:
        post = {"target": "api_calls", "limit": "10000", "warn_levels": "50, 80, 100", **changes}
        response = client.post(SAVE, post, headers=HTMX)
        assert response.status_code == 422, changes
        html = response.content.decode()
        assert '<details class="budget-form-box" open>' in html  # errors show unfolded
        error = re.search(rf'<p class="error" id="id_{field}-error" role="alert" '
                          r'data-code="(\w+)">([^<]*)</p>', html)  # fmt: skip
        assert error is not None, (changes, html)
        assert error[1] == code and message in error[2], (changes, error[0])
    assert not Budget.objects.exists()


def test_a_member_looks_but_may_not_change(client, subscribed, pinned):
    starter = subscribed
    owner = make_user(starter, "olga")
    _owner_budgets(starter, owner)
    member = make_user(starter, "mo", Membership.Role.MEMBER)
    client.force_login(member)
    html = client.get(BUDGETS, headers=HTMX).content.decode()
    assert "<strong>0</strong> of 10,000 calls used" in html
    assert "budget-form" not in html and "budget-edit" not in html and "budget-delete" not in html
    assert "Only the account's owners and billing contacts can change budgets." in html
    post = {"target": "api_calls", "limit": "1", "warn_levels": "80"}
    assert client.post(SAVE, post, headers=HTMX).status_code == 403
    budget = Budget.objects.get(kind="units")
    delete = reverse("dashboards:budget_delete", args=[budget.pk])
    assert client.post(delete, headers=HTMX).status_code == 403
    assert Budget.objects.get(kind="units").limit == 10_000


def test_billing_member_deletes_and_another_accounts_budget_is_a_404(
    client, subscribed, other_account, pinned
):
    starter = subscribed
    _owner_budgets(starter, make_user(starter, "olga"))
    theirs = budget_set(account=other_account, kind="units", meter=_calls(), limit=5,
                        warn_levels=[80], hard_cap=False, source="staff")  # fmt: skip
    client.force_login(make_user(starter, "bo", Membership.Role.BILLING))
    assert client.post(reverse("dashboards:budget_delete", args=[theirs.pk])).status_code == 404
    assert client.get(BUDGETS, {"edit": theirs.pk}).status_code == 404
    assert Budget.objects.filter(pk=theirs.pk).exists()
    ours = Budget.objects.get(account=starter, kind="units")
    response = client.post(reverse("dashboards:budget_delete", args=[ours.pk]), headers=HTMX)
    assert (
        response.status_code == 200 and 'data-budget="api_calls"' not in response.content.decode()
    )
    assert not Budget.objects.filter(pk=ours.pk).exists()


def _staff(username: str, *codenames: str):
    user = get_user_model().objects.create_user(username, is_staff=True)
    for codename in codenames:
        app, name = codename.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app, codename=name)
        )
    return get_user_model().objects.get(pk=user.pk)


def test_staff_viewing_as_need_the_budget_permissions(client, subscribed, pinned):
    starter = subscribed
    url = f"{SAVE}?account={starter.pk}"
    post = {"target": "api_calls", "limit": "30000", "warn_levels": "90"}
    client.force_login(_staff("viewer", "billing.view_account"))
    html = client.get(f"{BUDGETS}?account={starter.pk}", headers=HTMX).content.decode()
    assert "budget-form" not in html
    response = client.post(url, post, headers=HTMX)
    assert response.status_code == 403 and "usage.add_budget" in response.content.decode()
    client.force_login(_staff("support", "billing.view_account", "usage.add_budget",
                              "usage.change_budget", "usage.delete_budget"))  # fmt: skip
    assert client.post(url, post, headers=HTMX).status_code == 200
    budget = Budget.objects.get()
    assert (budget.limit, budget.source, budget.updated_by.username) == (30_000, "staff", "support")


def test_raising_the_limit_rearms_the_levels_no_longer_reached(
    client, starter, pinned, django_capture_on_commit_callbacks
):
    from django.core import mail

    from usage.models import AlertDelivery
    from usage.services.alerts import alerts_evaluate_account

    owner = make_user(starter, "olga", email="olga@initech.example")
    client.force_login(owner)
    post = {"target": "api_calls", "limit": "10000", "warn_levels": "50, 80", "hard_cap": "on"}
    client.post(SAVE, post, headers=HTMX)
    with django_capture_on_commit_callbacks(execute=True):
        alerts_evaluate_account(account=starter)
    # 8,000 of 10,000: 50% (5,000) and 80% (8,000) reached, one e-mail each.
    assert sorted(AlertDelivery.objects.values_list("level", flat=True)) == [50, 80]
    assert len(mail.outbox) == 2
    # Raised to 16,000: 8,000 still reaches 50% (8,000), no longer 80% (12,800): the 80%
    # alert is resolved and re-armed (usage.services.alert_resolution), 50% stays.
    with django_capture_on_commit_callbacks(execute=True):
        client.post(SAVE, {**post, "limit": "16000"}, headers=HTMX)
    still_open = AlertDelivery.objects.filter(resolved_at__isnull=True)
    assert list(still_open.values_list("level", flat=True)) == [50]
    resolved = AlertDelivery.objects.get(level=80)
    assert resolved.budget is None and "raised from 10,000 calls to 16,000 calls" in (
        resolved.resolution
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert alerts_evaluate_account(account=starter) == []
    assert len(mail.outbox) == 2


def test_no_subscription_no_form(client, db):
    account = account_create(name="Bare", billing_email="b@bare.example")
    client.force_login(make_user(account, "bea"))
    html = client.get(BUDGETS, headers=HTMX).content.decode()
    assert 'data-testid="budgets-no-subscription"' in html and "budget-form" not in html
    post = {"target": "spend", "limit": "10", "warn_levels": "80"}
    assert client.post(SAVE, post, headers=HTMX).status_code == 404
