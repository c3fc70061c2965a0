"""Issue 14 item 7 on the dashboard: plural unit labels, a seat projection never below the
current seats and shown once, and the spend alerts compare with."""

import re

import pytest
from django.urls import reverse

from tests.factories import make_user

pytestmark = pytest.mark.django_db


def test_units_ranges_and_spend_line(client, pro_account):
    client.force_login(make_user(pro_account, "ada"))
    html = client.get(reverse("dashboards:home")).content.decode()
    assert re.search(r'usage-api_calls">10,500</span>\s*<span class="unit">calls<', html)
    assert re.search(r'usage-seats">3</span>\s*<span class="unit">seats<', html)
    # Seats went 2 then 3: the projection is 3 and its range is not "2 – 3" (below the
    # current value) nor "3 – 3": the value alone.
    seats = html[html.index('data-testid="projected-seats"') :][:300]
    assert re.match(r'data-testid="projected-seats">3</span>\s*</div>', seats), seats
    assert "2 – 3" not in html and "3 – 3" not in html and "$30.00 – $30.00" not in html
    # Spend = $99.00 base + $31.00 usage (500 calls over x 0.2¢ = $1.00; 3 seats x $10).
    line = " ".join(re.search(r'data-testid="spend-so-far"[^>]*>(.*?)</p>', html, re.S)[1].split())
    assert line == "Spend so far: <strong>$130.00</strong> = $99.00 base + $31.00 usage"
    assert 'data-spend-minor="13000"' in html
