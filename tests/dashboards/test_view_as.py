"""Staff "view as customer" (issue 14, item 10) and friendly 404s for bad URLs (item 11)."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.urls import reverse

from tests.factories import make_user

pytestmark = pytest.mark.django_db


def _staff(username: str, *codenames: str):
    user = get_user_model().objects.create_user(username, password="pw-staff-123", is_staff=True)
    for codename in codenames:
        app, name = codename.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app, codename=name)
        )
    return get_user_model().objects.get(pk=user.pk)


def _internal_urls(html: str) -> list[str]:
    """Every href / action / hx-* URL of a customer page that points at the dashboards,
    but the banner's "exit" and GET forms' actions (their fields carry the account)."""
    html = re.sub(r'<a href="/dashboard/" data-testid="exit-view-as">', "", html)
    html = re.sub(r'<form method="get" action="/dashboard/"', "", html)
    urls = re.findall(r'(?:href|action|hx-get|hx-post|data-chart-url)="(/dashboard/[^"]*)"', html)
    return [u.replace("&amp;", "&") for u in urls]


@pytest.mark.parametrize("page", ["dashboards:home", "dashboards:invoices", "dashboards:alerts"])
def test_staff_viewing_as_keep_the_account_on_every_dashboard_url(client, pro_account, page):
    client.force_login(_staff("support", "billing.view_account"))
    response = client.get(f"{reverse(page)}?account={pro_account.pk}")
    html = response.content.decode()
    assert response.status_code == 200
    assert "Viewing <strong>Acme Analytics</strong> as staff" in html
    urls = _internal_urls(html)
    assert len(urls) >= 3  # at least the three nav links
    for url in urls:
        assert f"account={pro_account.pk}" in url, url


def test_period_selector_and_csv_link_keep_the_account(client, pro_account):
    client.force_login(_staff("support", "billing.view_account"))
    html = client.get(f"{reverse('dashboards:home')}?account={pro_account.pk}").content.decode()
    assert f'<input type="hidden" name="account" value="{pro_account.pk}">' in html
    csv = f"{reverse('dashboards:usage_csv')}?period=0&amp;account={pro_account.pk}"
    assert csv in html


def test_a_customer_sees_no_staff_banner_and_no_account_in_urls(client, pro_account):
    client.force_login(make_user(pro_account, "owner"))
    html = client.get(reverse("dashboards:home")).content.decode()
    assert "as staff" not in html
    assert 'data-testid="account-picker"' not in html
    assert all("account=" not in url for url in _internal_urls(html))


def test_staff_with_view_permission_get_an_account_picker(client, pro_account, other_account):
    client.force_login(_staff("support", "billing.view_account"))
    html = client.get(reverse("dashboards:home")).content.decode()
    assert 'data-testid="account-picker"' in html
    assert f'<option value="{pro_account.pk}">Acme Analytics</option>' in html
    assert f'<option value="{other_account.pk}">' in html


def test_staff_without_view_permission_get_no_picker(client, pro_account):
    client.force_login(_staff("plain"))
    html = client.get(reverse("dashboards:home")).content.decode()
    assert 'data-testid="account-picker"' not in html


@pytest.mark.parametrize(
    "query", ["period=abc", "period=-99", "period=1", "account=xyz", "account=999999"]
)
def test_bad_parameters_render_our_404_page_even_with_debug(client, settings, pro_account, query):
    settings.DEBUG = True  # local settings: Django would show its technical 404 page
    client.force_login(make_user(pro_account, "owner"))
    for page in ("dashboards:home", "dashboards:invoices", "dashboards:alerts"):
        if page != "dashboards:home" and query.startswith("period"):
            continue
        response = client.get(f"{reverse(page)}?{query}")
        html = response.content.decode()
        assert response.status_code == 404
        assert 'data-testid="not-found"' in html
        assert "Using the URLconf" not in html  # Django's debug page
        assert 'class="topbar"' in html  # our layout


def test_a_member_asking_for_another_account_gets_our_404(client, pro_account, other_account):
    client.force_login(make_user(pro_account, "stranger"))
    response = client.get(f"{reverse('dashboards:invoices')}?account={other_account.pk}")
    assert response.status_code == 404
    assert "We couldn't find that page" in response.content.decode()
