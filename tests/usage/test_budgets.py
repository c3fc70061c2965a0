"""Budgets service (issue 16): validation errors by field and code, the plan's maximum for
customers (not staff), who may set them, plan defaults, and the two hooks."""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from billing.models import Account, Membership, Meter
from tests.factories import make_user
from usage.models import Budget, PlanBudgetPolicy
from usage.services.budgets import (
    budget_delete,
    budget_set,
    plan_default_budgets_apply,
    plan_default_budgets_apply_for,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def globex(other_account):
    """Globex on Starter (API calls at 0.1¢, usd), with an owner, a billing and a member."""
    return {
        "account": other_account,
        "owner": make_user(other_account, "gina", email="gina@globex.example"),
        "billing": make_user(other_account, "bo", Membership.Role.BILLING),
        "member": make_user(other_account, "mia", Membership.Role.MEMBER),
        "calls": Meter.objects.get(event_name="api_calls"),
    }


def _set(globex, *, user="owner", source="customer", **kwargs):
    values = {
        "account": globex["account"],
        "kind": "units",
        "meter": globex["calls"],
        "limit": 10_000,
        "warn_levels": [50, 80, 100],
        "hard_cap": True,
    }
    values.update(kwargs)
    return budget_set(user=globex.get(user), source=source, **values)


def _error(exc: ValidationError) -> tuple[str, str, str]:
    [(field, [error])] = exc.error_dict.items()
    return field, error.code, error.messages[0]


def test_owner_sets_a_units_budget_levels_sorted(globex):
    budget = _set(globex, warn_levels=[100, 50, 80])
    assert (budget.kind, budget.meter, budget.limit, budget.currency) == (
        "units",
        globex["calls"],
        10_000,
        "",
    )
    assert budget.warn_levels == [50, 80, 100]
    assert budget.hard_cap and budget.source == "customer"
    assert budget.updated_by == globex["owner"]


def test_billing_member_sets_a_spend_budget_in_the_subscription_currency(globex):
    # $250.00 = 25,000 cents; the currency is Starter's subscription's (usd).
    budget = _set(globex, user="billing", kind="spend", meter=None, limit=25_000, hard_cap=False)
    assert (budget.kind, budget.meter, budget.limit, budget.currency) == (
        "spend",
        None,
        25_000,
        "usd",
    )


def test_setting_again_replaces_the_budget(globex):
    first = _set(globex)
    second = _set(globex, limit=12_000, warn_levels=[90], hard_cap=False)
    assert second.pk == first.pk and Budget.objects.count() == 1
    second.refresh_from_db()
    assert (second.limit, second.warn_levels, second.hard_cap) == (12_000, [90], False)


ERRORS = [  # (changes, field, code, part of the message)
    ({"limit": 0}, "limit", "limit_not_positive", "Enter a limit above zero."),
    ({"limit": -5}, "limit", "limit_not_positive", "Enter a limit above zero."),
    ({"warn_levels": []}, "warn_levels", "warn_levels_empty", "at least one warn level"),
    ({"warn_levels": [0, 80]}, "warn_levels", "warn_levels_range", "from 1 to 100"),
    ({"warn_levels": [80, 101]}, "warn_levels", "warn_levels_range", "from 1 to 100"),
    ({"warn_levels": ["80"]}, "warn_levels", "warn_levels_range", "whole percentages"),
    ({"warn_levels": [80, 50, 80]}, "warn_levels", "warn_levels_repeated", "80% is repeated"),
    (
        {"warn_levels": [10, 20, 30, 40, 50, 60]},
        "warn_levels",
        "warn_levels_too_many",
        "at most 5 warn levels (6 given)",
    ),
    ({"kind": "bogus"}, "kind", "invalid_kind", "Choose a meter or the whole bill."),
    ({"meter": None}, "meter", "meter_required", "Choose a meter."),
    ({"kind": "spend"}, "meter", "meter_not_allowed", "A whole-bill budget has no meter."),
]


def test_each_error_names_its_field_and_code(globex):
    # One account for all the cases (each subscription costs the emulator a second).
    for changes, field, code, message in ERRORS:
        with pytest.raises(ValidationError) as caught:
            _set(globex, **changes)
        got_field, got_code, got_message = _error(caught.value)
        assert (got_field, got_code) == (field, code), changes
        assert message in got_message, changes
    assert not Budget.objects.exists()


def test_a_meter_not_on_the_plan_is_refused(globex):
    transfer = Meter.objects.get(event_name="data_transfer_gb")  # Growth's, not Starter's
    with pytest.raises(ValidationError) as caught:
        _set(globex, meter=transfer)
    assert _error(caught.value) == (
        "meter",
        "meter_not_on_plan",
        "Data transfer is not on your plan.",
    )


def test_no_subscription_no_budget(globex):
    bare = Account.objects.create(name="Initech", billing_email="b@initech.example")
    with pytest.raises(ValidationError) as caught:
        budget_set(
            account=bare, kind="spend", limit=100, warn_levels=[80], hard_cap=False,
            source="staff",
        )  # fmt: skip
    assert _error(caught.value)[:2] == ("kind", "no_subscription")


def test_plan_maximum_refused_for_customers_with_the_figure(globex):
    plan = _plan(globex)
    PlanBudgetPolicy.objects.create(
        plan=plan, kind="units", meter=globex["calls"], max_limit=20_000
    )
    # $500.00 = 50,000 cents
    PlanBudgetPolicy.objects.create(plan=plan, kind="spend", currency="usd", max_limit=50_000)
    assert _set(globex, limit=20_000).limit == 20_000  # the maximum itself is allowed
    with pytest.raises(ValidationError) as caught:
        _set(globex, limit=20_001)
    assert _error(caught.value) == (
        "limit",
        "above_plan_maximum",
        "The Starter plan allows a limit of at most 20,000 calls.",
    )
    with pytest.raises(ValidationError) as caught:
        _set(globex, kind="spend", meter=None, limit=50_001)
    assert _error(caught.value) == (
        "limit",
        "above_plan_maximum",
        "The Starter plan allows a limit of at most $500.00.",
    )
    assert Budget.objects.get(kind="units").limit == 20_000  # unchanged by the refusal


def test_staff_may_exceed_the_maximum_and_customers_may_keep_it(globex):
    PlanBudgetPolicy.objects.create(
        plan=_plan(globex), kind="units", meter=globex["calls"], max_limit=20_000
    )
    staff = make_staff()
    budget = budget_set(
        account=globex["account"], kind="units", meter=globex["calls"], limit=50_000,
        warn_levels=[80], hard_cap=False, user=staff, source="staff",
    )  # fmt: skip
    assert (budget.limit, budget.source, budget.updated_by) == (50_000, "staff", staff)
    # The customer changes the levels and keeps staff's 50,000; raising it is refused.
    kept = _set(globex, limit=50_000, warn_levels=[50, 90])
    assert (kept.limit, kept.warn_levels, kept.source) == (50_000, [50, 90], "customer")
    with pytest.raises(ValidationError) as caught:
        _set(globex, limit=50_001)
    assert _error(caught.value)[1] == "above_plan_maximum"


@pytest.mark.parametrize("who", ["member", None])
def test_members_and_anonymous_may_not_set_or_delete(globex, who):
    budget = _set(globex)
    with pytest.raises(PermissionDenied):
        _set(globex, user=who, limit=1)
    with pytest.raises(PermissionDenied):
        budget_delete(account=globex["account"], budget_id=budget.pk, user=globex.get(who))
    assert Budget.objects.get().limit == 10_000


def test_delete_only_the_accounts_own_budget(globex, pro_account):
    pro_owner = make_user(pro_account, "pat")
    theirs = budget_set(
        account=pro_account, kind="units", meter=globex["calls"], limit=5, warn_levels=[80],
        hard_cap=False, user=pro_owner, source="customer",
    )  # fmt: skip
    assert (
        budget_delete(account=globex["account"], budget_id=theirs.pk, user=globex["owner"]) is False
    )
    assert Budget.objects.filter(pk=theirs.pk).exists()
    ours = _set(globex)
    assert budget_delete(account=globex["account"], budget_id=ours.pk, user=globex["owner"])
    assert not Budget.objects.filter(pk=ours.pk).exists()


def test_plan_defaults_created_once_never_overwrite_and_come_back(globex):
    plan = _plan(globex)
    PlanBudgetPolicy.objects.create(
        plan=plan, kind="units", meter=globex["calls"], default_limit=5_000,
        default_warn_levels=[80, 100], default_hard_cap=True,
    )  # fmt: skip
    # $100.00 = 10,000 cents in usd; a eur policy does not apply to a usd subscription.
    PlanBudgetPolicy.objects.create(plan=plan, kind="spend", currency="usd", default_limit=10_000)
    PlanBudgetPolicy.objects.create(plan=plan, kind="spend", currency="eur", default_limit=9_000)
    account = globex["account"]
    created = plan_default_budgets_apply(account)
    assert sorted((b.kind, b.limit, b.currency, b.source) for b in created) == [
        ("spend", 10_000, "usd", "plan_default"),
        ("units", 5_000, "", "plan_default"),
    ]
    units = Budget.objects.get(kind="units")
    assert (units.warn_levels, units.hard_cap) == ([80, 100], True)
    assert plan_default_budgets_apply(account) == []
    # The customer's change stays; deleting it puts the plan's default back.
    _set(globex, limit=7_000)
    assert plan_default_budgets_apply(account) == []
    assert Budget.objects.get(kind="units").limit == 7_000
    budget_delete(account=account, budget_id=Budget.objects.get(kind="units").pk,
                  user=globex["owner"])  # fmt: skip
    back = Budget.objects.get(kind="units")
    assert (back.limit, back.source) == (5_000, "plan_default")
    # By id, as a billing.account_changes listener: nothing missing, nothing added; an
    # account that is gone is no error.
    Budget.objects.filter(kind="spend").delete()
    plan_default_budgets_apply_for(account.pk)
    assert Budget.objects.get(kind="spend").limit == 10_000
    plan_default_budgets_apply_for(account.pk + 1_000)
    assert Budget.objects.count() == 2


def test_a_changed_limit_is_told_to_the_alert_engine(globex, monkeypatch):
    from usage.services import budgets as budget_services

    changed = []
    monkeypatch.setattr(
        budget_services,
        "budget_changed",
        lambda *, budget, old_limit: changed.append((budget.pk, old_limit)),
    )
    budget = _set(globex)
    _set(globex, limit=10_000)  # the same limit: nothing to re-arm
    _set(globex, limit=12_000)
    # A new budget has nothing to re-arm; only the raise from 10,000 is told to the alerts.
    assert changed == [(budget.pk, 10_000)]


def _plan(globex):
    from billing.mirror.subscriptions import subscription_state_for_account

    return subscription_state_for_account(account=globex["account"]).plan


def make_staff():
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user("stan", is_staff=True)


def test_plan_defaults_follow_a_new_subscription_as_an_account_change_listener(
    demo_catalog, monkeypatch, django_capture_on_commit_callbacks
):
    from billing import account_changes
    from billing.services.accounts import account_create
    from billing.services.subscriptions import subscription_create

    # As usage's AppConfig.ready would register it (the lead wires it there).
    monkeypatch.setattr(account_changes, "_listeners", [plan_default_budgets_apply_for])
    PlanBudgetPolicy.objects.create(
        plan=demo_catalog["starter"], kind="units",
        meter=Meter.objects.get(event_name="api_calls"), default_limit=5_000,
    )  # fmt: skip
    account = account_create(name="Hooli", billing_email="b@hooli.example")
    with django_capture_on_commit_callbacks(execute=True):
        subscription_create(account=account, plan=demo_catalog["starter"])
    budget = Budget.objects.get(account=account)
    assert (budget.limit, budget.source) == (5_000, "plan_default")
