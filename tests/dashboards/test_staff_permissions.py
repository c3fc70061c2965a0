"""Staff reach other accounts' pages only with Django permissions, checked per action
(issue 12, item 7: a staff user without permissions could change any account's alert
rules through ``?account=``, because the dashboard checked only ``is_staff``)."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.urls import reverse

from tests.factories import make_user
from usage.models import AlertRule

pytestmark = pytest.mark.django_db


def _staff(username: str, *codenames: str):
    user = get_user_model().objects.create_user(username, password="pw-staff-123", is_staff=True)
    for codename in codenames:
        app, name = codename.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app, codename=name)
        )
    return get_user_model().objects.get(pk=user.pk)  # a fresh permission cache


def _add_spend_rule(client, account):
    return client.post(
        f"{reverse('dashboards:alert_add')}?account={account.pk}",
        {"kind": "spend", "amount": "150.00"},
    )


def test_staff_without_permissions_cannot_change_or_see_another_account(client, pro_account):
    client.force_login(_staff("plain"))
    before = AlertRule.objects.filter(account=pro_account).count()
    response = _add_spend_rule(client, pro_account)
    assert response.status_code == 403
    assert "billing.view_account" in response.content.decode()
    assert AlertRule.objects.filter(account=pro_account).count() == before
    assert client.get(f"{reverse('dashboards:home')}?account={pro_account.pk}").status_code == 403


def test_staff_who_may_only_look_cannot_add_or_remove_rules(client, pro_account):
    rule = AlertRule.objects.create(account=pro_account, kind="spend", amount=5_000, currency="usd")
    client.force_login(_staff("viewer", "billing.view_account"))
    page = client.get(f"{reverse('dashboards:home')}?account={pro_account.pk}")
    assert page.status_code == 200
    assert 'data-testid="usage-api_calls">10,500<' in page.content.decode()
    assert _add_spend_rule(client, pro_account).status_code == 403
    remove = client.post(
        f"{reverse('dashboards:alert_remove', args=[rule.pk])}?account={pro_account.pk}"
    )
    assert remove.status_code == 403
    assert AlertRule.objects.filter(pk=rule.pk).exists()


def test_staff_with_the_add_permission_adds_a_rule(client, pro_account):
    client.force_login(_staff("support", "billing.view_account", "usage.add_alertrule"))
    response = _add_spend_rule(client, pro_account)
    assert response.status_code in (200, 302)
    # $150.00 → 15,000 minor units of the subscription's currency
    assert AlertRule.objects.filter(account=pro_account, kind="spend", amount=15_000).exists()


def test_a_member_probing_another_account_gets_404_not_403(client, pro_account, other_account):
    client.force_login(make_user(other_account, "globex-owner"))
    assert client.get(f"{reverse('dashboards:home')}?account={pro_account.pk}").status_code == 404
    assert _add_spend_rule(client, pro_account).status_code == 404
