"""The plan simulator page: the sentences a customer reads, who may see it, no other
account's data, and the staff pages' guard.

The account and its usage are those of ``tests.usage.test_simulator`` (Pro since Jan 1
2026, now Apr 4; every cost worked there). Over the three closed periods Pro cost
12,900 + 13,300 + 16,900 = 43,100:
- Bulk:    400 + 600 + 1,250 = 2,250  -> 2,250 - 43,100 = -40,850: $408.50 less (cheapest)
- Starter: 800 + 1,200 + 2,500 = 4,500 -> -38,600: $386.00 less
- Growth:  1,000 + 2,200 + 8,000 = 11,200 -> -31,900: $319.00 less
- Scale:   3,500 + 15,500 + 36,000 = 55,000 -> +11,900: $119.00 more
This period's projection: Pro 15,900, Starter 3,000 -> 12,900 less ($129.00);
Scale 38,500 -> 22,600 more ($226.00).
"""

import re

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.urls import reverse

from billing.models import Membership
from tests.factories import make_user
from tests.usage.test_simulator import NOW, subscribe_on_jan_1, write_rollups

pytestmark = pytest.mark.django_db
URL = reverse("dashboards:simulator")


@pytest.fixture
def replay_account(stripe_client, demo_catalog):
    account = subscribe_on_jan_1(stripe_client, demo_catalog["pro"])
    write_rollups(account)
    return account


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


def _row(response, key: str) -> str:
    """The text of the table row of plan ``key``."""
    html = response.content.decode()
    row = html[html.index(f'data-testid="simulator-plan-{key}"') :]
    row = row[row.index(">") + 1 : row.index("</tr>")]
    return " ".join(re.sub(r"<[^>]+>", " ", row).split())


def _text(response) -> str:
    html = response.content.decode()
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def test_the_difference_in_words_a_customer_understands(client, replay_account, frozen):
    client.force_login(make_user(replay_account, "ada"))
    response = client.get(URL)
    assert response.status_code == 200
    text = _text(response)
    # The cheapest alternative leads.
    assert "You would have paid $408.50 less on Bulk over your last 3 billing periods." in text
    assert "You would have paid $386.00 less on Starter over your last 3 billing periods." in text
    assert "You would have paid $319.00 less on Growth over your last 3 billing periods." in text
    assert "You would have paid $119.00 more on Scale over your last 3 billing periods." in text
    assert "This period is on track to cost about $129.00 less on Starter." in text
    assert "This period is on track to cost about $226.00 more on Scale." in text
    # The table: Starter's periods oldest first, its total, the difference, the projection.
    assert _row(response, "starter") == "Starter $8.00 $12.00 $25.00 $45.00 $386.00 less $30.00"
    assert _row(response, "pro") == "Pro your plan $129.00 $133.00 $169.00 $431.00 — $159.00"
    # What the numbers leave out.
    assert "today's prices" in text
    assert "Taxes, discounts and credits are not included" in text
    assert "Jan 1 – Feb 1, 2026" in text and "Mar 1 – Apr 1, 2026" in text


def test_no_other_accounts_data(client, stripe_client, demo_catalog, replay_account, frozen):
    other = subscribe_on_jan_1(stripe_client, demo_catalog["starter"], "Other Co")
    # 777,000 calls in March: on Starter 777,000 x 0.1 = 77,700 ($777.00).
    write_rollups(other, [("api_calls", NOW.replace(month=3, day=15), 777_000)])
    client.force_login(make_user(replay_account, "ada"))
    text = _text(client.get(URL))
    assert "$777.00" not in text and "Other Co" not in text
    assert "$386.00 less on Starter" in text  # Replay Co's own numbers
    # A member asking for another account's page gets a 404, never its numbers.
    assert client.get(URL, {"account": other.pk}).status_code == 404
    client.force_login(make_user(other, "bob"))
    text = _text(client.get(URL))
    # Other Co pays Starter: March 77,700; on Pro 9,900 + (777,000 - 10,000) x 0.2
    # = 9,900 + 153,400 = 163,300 -> 163,300 - 77,700 = 85,600 more in March, and
    # 9,900 more in January and February (no usage, the base fee) = 105,400 ($1,054.00).
    assert "You would have paid $1,054.00 more on Pro over your last 3 billing periods." in text
    assert "Replay Co" not in text and "$408.50" not in text
    assert client.get(URL, {"account": replay_account.pk}).status_code == 404


@pytest.mark.parametrize(
    ("role", "viewers_see_amounts", "status"),
    [
        (Membership.Role.OWNER, False, 200),
        (Membership.Role.BILLING, False, 200),
        (Membership.Role.MEMBER, True, 200),
        (Membership.Role.MEMBER, False, 403),
    ],
)
def test_who_may_see_it(
    client, settings, replay_account, frozen, role, viewers_see_amounts, status
):
    settings.BILLING_VIEWERS_SEE_AMOUNTS = viewers_see_amounts
    client.force_login(make_user(replay_account, f"user-{role}", role=role))
    response = client.get(URL)
    assert response.status_code == status
    if status == 200:
        assert "$386.00 less on Starter" in _text(response)
        # The way to act on it: owners and billing members change the plan in-app.
        has_link = 'data-testid="simulator-change-plan"' in response.content.decode()
        assert has_link == (role != Membership.Role.MEMBER)
    else:
        assert "$" not in _text(response).split("Compare plans")[-1]


def test_signed_out_is_sent_to_sign_in(client, replay_account):
    response = client.get(URL)
    assert response.status_code == 302 and "login" in response["Location"]


def _staff(username, *permissions):
    user = get_user_model().objects.create_user(username, password="pw", is_staff=True)
    user.user_permissions.add(
        *[
            Permission.objects.get(content_type__app_label=app, codename=codename)
            for app, codename in (p.split(".") for p in permissions)
        ]
    )
    return user


def test_staff_view_as_needs_the_permission(client, replay_account, frozen):
    client.force_login(_staff("sam"))
    assert client.get(URL, {"account": replay_account.pk}).status_code == 403
    client.force_login(_staff("vera", "billing.view_account"))
    response = client.get(URL, {"account": replay_account.pk})
    assert response.status_code == 200
    assert "$386.00 less on Starter" in _text(response)
    assert 'data-testid="simulator-change-plan"' not in response.content.decode()  # admin's job


def test_staff_simulator_page_is_guarded(client, replay_account, frozen):
    url = reverse("revenue:simulator")
    # Not staff: the admin's login page. Staff without billing.view_account: 403.
    client.force_login(make_user(replay_account, "ada"))
    response = client.get(url, {"account": replay_account.pk})
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    client.force_login(_staff("sam"))
    assert client.get(url, {"account": replay_account.pk}).status_code == 403
    client.force_login(_staff("vera", "billing.view_account"))
    response = client.get(url, {"account": replay_account.pk})
    assert response.status_code == 200
    # Scale: 3,500 / 15,500 / 36,000, total 55,000, 11,900 more than Pro, projection 38,500.
    assert _row(response, "scale") == "Scale $35.00 $155.00 $360.00 $550.00 $119.00 more $385.00"
