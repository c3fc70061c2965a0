"""Budgets in admin (issue 16): staff edits go through ``budget_set`` with source staff
(above the plan's maximum allowed), errors are shown by field, deletions go through
``budget_delete``, and Django's model permissions gate each action. Plan budget policies
have their own admin."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from billing.models import Meter, Plan
from usage.models import Budget, PlanBudgetPolicy

pytestmark = pytest.mark.django_db
ADD = "/admin/usage/budget/add/"


@pytest.fixture
def calls(other_account):
    PlanBudgetPolicy.objects.create(
        plan=Plan.objects.get(key="starter"), kind="units",
        meter=Meter.objects.get(event_name="api_calls"), max_limit=20_000,
    )  # fmt: skip
    return Meter.objects.get(event_name="api_calls")


def _post(other_account, calls, **changes):
    data = {"account": other_account.pk, "kind": "units", "meter": calls.pk, "limit": "50000",
            "warn_levels": "80, 50", "hard_cap": "on"}  # fmt: skip
    data.update(changes)
    return data


def test_staff_add_and_change_go_through_the_service(
    admin_client, admin_user, other_account, calls
):
    # 50,000 calls is above Starter's customer maximum (20,000): staff may.
    response = admin_client.post(ADD, _post(other_account, calls))
    assert response.status_code == 302, response.context["adminform"].form.errors
    budget = Budget.objects.get()
    assert (budget.limit, budget.warn_levels, budget.hard_cap) == (50_000, [50, 80], True)
    assert (budget.source, budget.updated_by) == ("staff", admin_user)
    response = admin_client.post(
        f"/admin/usage/budget/{budget.pk}/change/", {"limit": "60000", "warn_levels": "90"}
    )
    assert response.status_code == 302
    budget.refresh_from_db()
    assert (budget.limit, budget.warn_levels, budget.hard_cap) == (60_000, [90], False)
    # A spend budget: 25,000 minor units of Starter's usd = $250.00 in the list.
    admin_client.post(ADD, _post(other_account, calls, kind="spend", meter="", limit="25000"))
    listing = admin_client.get("/admin/usage/budget/").content.decode()
    assert "60,000 calls" in listing and "$250.00" in listing and "50%, 80%" in listing


def test_admin_errors_are_shown_by_field(admin_client, other_account, calls):
    for changes, field, message in [
        ({"warn_levels": "0, 80"}, "warn_levels", "from 1 to 100"),
        ({"warn_levels": "eighty"}, "warn_levels", "like 50, 80, 100"),
        ({"limit": "0"}, "limit", "Enter a limit above zero."),
        ({"kind": "spend"}, "meter", "A whole-bill budget has no meter."),
    ]:
        response = admin_client.post(ADD, _post(other_account, calls, **changes))
        assert response.status_code == 200, changes
        errors = response.context["adminform"].form.errors
        assert message in " ".join(errors.get(field, [])), (changes, errors)
    assert not Budget.objects.exists()


def test_admin_delete_goes_through_the_service(admin_client, other_account, calls):
    admin_client.post(ADD, _post(other_account, calls))
    budget = Budget.objects.get()
    response = admin_client.post(
        "/admin/usage/budget/",
        {"action": "delete_selected", "_selected_action": [budget.pk], "post": "yes"},
    )
    assert response.status_code == 302 and not Budget.objects.exists()


def test_staff_need_the_model_permissions(client, other_account, calls):
    user = get_user_model().objects.create_user("viewer", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_budget"))
    client.force_login(user)
    assert client.get("/admin/usage/budget/").status_code == 200
    assert client.post(ADD, _post(other_account, calls)).status_code == 403
    assert not Budget.objects.exists()


def test_plan_policy_admin(admin_client, calls):
    url = "/admin/usage/planbudgetpolicy/add/"
    plan = Plan.objects.get(key="starter")
    base = {"plan": plan.pk, "kind": "spend", "currency": "USD", "default_limit": "10000",
            "default_warn_levels": "80, 80", "max_limit": "50000"}  # fmt: skip
    response = admin_client.post(url, base)
    assert "80% is repeated" in " ".join(
        response.context["adminform"].form.errors["default_warn_levels"]
    )
    response = admin_client.post(
        url, {**base, "default_warn_levels": "50, 80", "default_limit": "60000"}
    )
    errors = response.context["adminform"].form.errors
    assert "The default may not be above the maximum." in errors["default_limit"]
    response = admin_client.post(url, {**base, "default_warn_levels": "100, 50"})
    assert response.status_code == 302
    policy = PlanBudgetPolicy.objects.get(kind="spend")
    assert (policy.currency, policy.default_warn_levels) == ("usd", [50, 100])
    # $100.00 default and $500.00 maximum (minor units 10,000 and 50,000); the units
    # policy's maximum reads in calls.
    listing = admin_client.get("/admin/usage/planbudgetpolicy/").content.decode()
    assert "$100.00" in listing and "$500.00" in listing and "20,000 calls" in listing
