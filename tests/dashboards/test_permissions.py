"""Acceptance 1 of issue 18: what owner, billing and viewer may do on every customer URL
(the table below, read from each view's own check), and that a member of account A
reaches nothing of account B (B's ``?account=``, invoices, lines, budgets, alert rules,
members and invitations are all 404: account ids and objects cannot be probed).

Two accounts on the drill-down tests' Trio plan, closed on a test clock (Sep 2026): their
renewal invoices carry a metered line. Requests are made on Oct 1 2026 01:01 (the period
after it). POSTs send a payload that is refused by validation where the role is allowed
(400/422), so an allowed role's answer differs from a forbidden one's (403) without
changing anything; removals act on a fresh object each time (302 when allowed).

The completeness test checks every URL named in ``dashboards`` and ``billing`` has a
row here (or is in ``NOT_ROLE_SCOPED`` with the reason), so a new URL needs its row.
"""

from dataclasses import dataclass, field

import pytest
import time_machine
from django.urls import get_resolver, reverse

from billing.models import Membership
from billing.services.members import invitation_create
from billing.services.portal_configuration import portal_configuration_ensure
from billing.stripe_api import stripe_client as make_stripe_client
from tests.dashboards.test_drilldown import RENEWED, _period, _renewal, trio_plan  # noqa: F401
from tests.factories import make_user
from usage.models import AlertRule, Budget
from usage.services.budgets import budget_set

pytestmark = pytest.mark.django_db
Role = Membership.Role
SMALL = {"data_transfer_gb": 10}  # 30 GB over Sep 1-5 (drill-down tests' fixture)
WHEN = RENEWED  # Oct 1 2026 01:01: the September invoices are final, October is open


@dataclass
class World:
    a: object
    b: object
    users: dict  # role -> user of account A
    b_owner: object
    invoice: object  # A's renewal invoice
    line: object  # its metered line
    b_invoice: object
    b_line: object
    counter: list = field(default_factory=lambda: [0])

    def fresh(self) -> int:
        self.counter[0] += 1
        return self.counter[0]


@pytest.fixture
def world(stripe_client, trio_plan):  # noqa: F811
    portal_configuration_ensure(client=make_stripe_client())
    made = _period(stripe_client, trio_plan, {"alpha": SMALL, "bravo": SMALL})
    a, b = made["alpha"], made["bravo"]
    users = {
        Role.OWNER: make_user(a, "a-owner", Role.OWNER, "owner@alpha.example"),
        Role.BILLING: make_user(a, "a-billing", Role.BILLING, "billing@alpha.example"),
        Role.MEMBER: make_user(a, "a-viewer", Role.MEMBER, "viewer@alpha.example"),
    }
    b_owner = make_user(b, "b-owner", Role.OWNER, "owner@bravo.example")
    invoice, b_invoice = _renewal(a), _renewal(b)
    [line], [b_line] = invoice.usage_lines, b_invoice.usage_lines
    return World(a, b, users, b_owner, invoice, line, b_invoice, b_line)


# Fresh objects for the rows that remove something ------------------------------------


def _rule(w: World, account=None) -> int:
    # A spend rule of $1.00 + n cents (unique per request): 100 + n minor units.
    return AlertRule.objects.create(
        account=account or w.a, kind="spend", amount=100 + w.fresh(), currency="usd"
    ).pk


def _budget(w: World, account=None) -> int:
    account = account or w.a
    Budget.objects.filter(account=account).delete()
    return budget_set(
        account=account, kind="spend", limit=50_000, warn_levels=[80], hard_cap=False,
        source=Budget.Source.STAFF,
    ).pk  # fmt: skip


def _viewer_membership(w: World, account=None) -> int:
    account = account or w.a
    n = w.fresh()
    return Membership.objects.get(
        user=make_user(account, f"extra-{n}", Role.MEMBER, f"extra-{n}@example.com")
    ).pk


def _invitation(w: World, account=None) -> int:
    account = account or w.a
    n = w.fresh()
    invitation, _ = invitation_create(
        account=account, email=f"inv-{n}@example.com", role=Role.MEMBER, invited_by=None,
        staff=True,
    )  # fmt: skip
    return invitation.pk


# The table ----------------------------------------------------------------------------
# (url name, method, args(world) -> list, data, {owner, billing, viewer: status})

OWN, BIL, VIEW = Role.OWNER, Role.BILLING, Role.MEMBER
ALL_200 = {OWN: 200, BIL: 200, VIEW: 200}
MONEY_ONLY = {OWN: 200, BIL: 200, VIEW: 403}


def _inv(w):
    return [w.invoice.id]


def _inv_line(w):
    return [w.invoice.id, w.line.id]


TABLE = [
    ("dashboards:home", "get", None, None, ALL_200),
    ("dashboards:chart", "get", lambda w: ["data_transfer_gb"], None, ALL_200),
    ("dashboards:invoices", "get", None, None, ALL_200),
    ("dashboards:usage_csv", "get", None, None, ALL_200),
    ("dashboards:statement_open", "get", None, None, ALL_200),
    ("dashboards:statement_open_csv", "get", None, None, ALL_200),
    ("dashboards:statement", "get", _inv, None, ALL_200),
    ("dashboards:statement_csv", "get", _inv, None, ALL_200),
    ("dashboards:drilldown_line", "get", _inv_line, None, ALL_200),
    ("dashboards:drilldown_day", "get", lambda w: [*_inv_line(w), "2026-09-01"], None, ALL_200),
    (
        "dashboards:drilldown_hour",
        "get",
        lambda w: [*_inv_line(w), "2026-09-01T10"],
        None,
        ALL_200,
    ),
    # An empty message: the line's page again with the error (200); viewers 403.
    ("dashboards:dispute_open", "post", _inv_line, {"message": "  "}, MONEY_ONLY),
    ("dashboards:alerts", "get", None, None, ALL_200),
    # Alert rules: owners and billing members change them; viewers 403 (they see the page).
    ("dashboards:alert_add", "post", None, {"kind": "spend"}, {OWN: 422, BIL: 422, VIEW: 403}),
    ("dashboards:alert_remove", "post", lambda w: [_rule(w)], {}, {OWN: 302, BIL: 302, VIEW: 403}),
    ("dashboards:alert_slack_set", "post", None, {}, {OWN: 422, BIL: 422, VIEW: 403}),
    ("dashboards:alert_slack_test", "post", None, {}, {OWN: 422, BIL: 422, VIEW: 403}),
    ("dashboards:alert_slack_remove", "post", None, {}, {OWN: 302, BIL: 302, VIEW: 403}),
    ("dashboards:credits", "get", None, None, ALL_200),
    ("dashboards:credits_top_up", "post", None, {}, {OWN: 400, BIL: 400, VIEW: 403}),
    (
        "dashboards:credits_auto_top_up",
        "post",
        None,
        {"enabled": "on", "threshold": "x"},
        {OWN: 400, BIL: 400, VIEW: 403},
    ),
    ("dashboards:budgets", "get", None, None, ALL_200),
    ("dashboards:budget_save", "post", None, {}, {OWN: 422, BIL: 422, VIEW: 403}),
    (
        "dashboards:budget_delete",
        "post",
        lambda w: [_budget(w)],
        {},
        {OWN: 302, BIL: 302, VIEW: 403},
    ),
    ("dashboards:members", "get", None, None, ALL_200),
    ("dashboards:member_invite", "post", None, {}, {OWN: 400, BIL: 400, VIEW: 403}),
    (
        "dashboards:member_remove",
        "post",
        lambda w: [_viewer_membership(w)],
        {},
        {OWN: 302, BIL: 302, VIEW: 403},
    ),
    (
        "dashboards:member_role",
        "post",
        lambda w: [_viewer_membership(w)],
        {"role": "member"},
        {OWN: 302, BIL: 403, VIEW: 403},
    ),
    (
        "dashboards:member_alerts",
        "post",
        None,
        {"receives_alerts": "on"},
        {OWN: 302, BIL: 302, VIEW: 302},
    ),
    (
        "dashboards:invitation_revoke",
        "post",
        lambda w: [_invitation(w)],
        {},
        {OWN: 302, BIL: 302, VIEW: 403},
    ),
    (
        "dashboards:invitation_resend",
        "post",
        lambda w: [_invitation(w)],
        {},
        {OWN: 302, BIL: 302, VIEW: 403},
    ),
    # Viewers see the simulator while they see amounts (the default; see the test below).
    ("dashboards:simulator", "get", None, None, ALL_200),
    ("dashboards:plan_change", "get", None, None, MONEY_ONLY),
    # No plan chosen: Stripe is not asked, the error is a 422; viewers 403.
    ("dashboards:plan_change_preview", "get", None, None, {OWN: 422, BIL: 422, VIEW: 403}),
    ("dashboards:plan_change_apply", "post", None, {}, {OWN: 422, BIL: 422, VIEW: 403}),
    # No plan change to wait for: 404; viewers 403.
    ("dashboards:plan_change_status", "get", None, None, {OWN: 404, BIL: 404, VIEW: 403}),
    # Into the Stripe Customer Portal (a 303 to Stripe's page); viewers 403.
    ("billing:portal", "post", None, {}, {OWN: 303, BIL: 303, VIEW: 403}),
]

# Named customer URLs without a role check of their own: the link from an invitation
# e-mail opens with the token alone (tests/dashboards/test_members_page.py).
NOT_ROLE_SCOPED = {"dashboards:invitation_accept"}


def _registered(name: str) -> bool:
    namespace, _, url_name = name.partition(":")
    resolver = get_resolver().namespace_dict[namespace][1]
    return url_name in resolver.reverse_dict


ROWS = [row for row in TABLE if _registered(row[0])]  # rows of URLs this tree has


def _request(client, w: World, row, role, *, query: str = ""):
    name, method, args, data, _ = row
    url = reverse(name, args=args(w) if args else None) + query
    if method == "get":
        return client.get(url)
    return client.post(url, data or {})


def test_every_customer_url_has_a_row():
    names = set()
    for namespace in ("dashboards", "billing"):
        resolver = get_resolver().namespace_dict[namespace][1]
        names |= {f"{namespace}:{key}" for key in resolver.reverse_dict if isinstance(key, str)}
    assert names - NOT_ROLE_SCOPED == {row[0] for row in ROWS}


def test_what_each_role_may_do(client, world):
    answers, expected = {}, {}
    with time_machine.travel(WHEN, tick=False):
        for role, user in world.users.items():
            client.force_login(user)
            for row in ROWS:
                answers[(row[0], role)] = _request(client, world, row, role).status_code
                expected[(row[0], role)] = row[4][role]
        client.logout()
        for row in ROWS:  # signed out: to the sign-in page
            response = _request(client, world, row, None)
            assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    wrong = {key: (answers[key], expected[key]) for key in answers if answers[key] != expected[key]}
    assert wrong == {}, wrong  # (url, role): (answered, expected)


def test_viewers_lose_the_money_pages_when_amounts_are_hidden(client, world, settings):
    settings.BILLING_VIEWERS_SEE_AMOUNTS = False
    client.force_login(world.users[Role.MEMBER])
    with time_machine.travel(WHEN, tick=False):
        if _registered("dashboards:simulator"):
            assert client.get(reverse("dashboards:simulator")).status_code == 403
        html = client.get(reverse("dashboards:home")).content.decode()
        csv_text = client.get(reverse("dashboards:usage_csv")).content.decode()
    assert 'data-testid="usage-data_transfer_gb"' in html  # usage stays
    for money in ('data-testid="cost-so-far"', 'data-testid="estimated-invoice"',
                  'data-testid="spend-so-far"', 'data-testid="estimate"',
                  'data-testid="cost-data_transfer_gb"', 'data-testid="breakdown-'):  # fmt: skip
        assert money not in html, money
    header = csv_text.splitlines()[0]
    assert header == "day (UTC),meter,event_name,unit,usage,usage to date"
    # The owner still sees every amount, and so do viewers once the operator allows it.
    client.force_login(world.users[Role.OWNER])
    with time_machine.travel(WHEN, tick=False):
        owner_html = client.get(reverse("dashboards:home")).content.decode()
        owner_csv = client.get(reverse("dashboards:usage_csv")).content.decode()
    assert 'data-testid="cost-so-far"' in owner_html and 'data-testid="estimate"' in owner_html
    assert owner_csv.splitlines()[0].endswith(",usage cost to date (USD)")
    settings.BILLING_VIEWERS_SEE_AMOUNTS = True
    client.force_login(world.users[Role.MEMBER])
    with time_machine.travel(WHEN, tick=False):
        html = client.get(reverse("dashboards:home")).content.decode()
    assert 'data-testid="cost-so-far"' in html


# Account A's members and account B ----------------------------------------------------

# Every GET page with B's id in ?account=: a 404 (never a 403: ids cannot be probed).
B_QUERY_ROWS = [row for row in ROWS if row[1] == "get"]


def test_a_member_of_a_sees_nothing_of_b(client, world):
    w = world
    b_inv, b_line = w.b_invoice.id, w.b_line.id
    b_objects = [
        ("dashboards:statement", [b_inv], "get", None),
        ("dashboards:statement_csv", [b_inv], "get", None),
        ("dashboards:drilldown_line", [b_inv, b_line], "get", None),
        ("dashboards:drilldown_day", [b_inv, b_line, "2026-09-01"], "get", None),
        ("dashboards:drilldown_hour", [b_inv, b_line, "2026-09-01T10"], "get", None),
        ("dashboards:dispute_open", [b_inv, b_line], "post", {"message": "mine"}),
        ("dashboards:alert_remove", [_rule(w, w.b)], "post", {}),
        ("dashboards:budget_delete", [_budget(w, w.b)], "post", {}),
        ("dashboards:member_remove", [_viewer_membership(w, w.b)], "post", {}),
        ("dashboards:member_role", [_viewer_membership(w, w.b)], "post", {"role": "owner"}),
        ("dashboards:invitation_revoke", [_invitation(w, w.b)], "post", {}),
        ("dashboards:invitation_resend", [_invitation(w, w.b)], "post", {}),
    ]
    b_budget = Budget.objects.get(account=w.b).pk
    before = {
        "rules": AlertRule.objects.filter(account=w.b).count(),
        "budgets": Budget.objects.filter(account=w.b).count(),
        "members": Membership.objects.filter(account=w.b).count(),
        "roles": sorted(Membership.objects.filter(account=w.b).values_list("role", flat=True)),
    }
    answers = {}
    with time_machine.travel(WHEN, tick=False):
        # Owners may do the most; billing and viewers are checked on the same URLs.
        for role, user in w.users.items():
            client.force_login(user)
            for row in B_QUERY_ROWS:
                response = _request(client, w, row, role, query=f"?account={w.b.pk}")
                answers[(row[0] + "?account=B", role)] = response.status_code
            for name, args, method, data in b_objects:
                url = reverse(name, args=args)
                response = client.get(url) if method == "get" else client.post(url, data)
                answers[(name, role)] = response.status_code
                assert "bravo Co" not in response.content.decode()
            edit = client.get(f"{reverse('dashboards:budgets')}?edit={b_budget}")
            answers[("dashboards:budgets?edit=B", role)] = edit.status_code
    # Viewers are refused some of these before the lookup (403 for the action itself);
    # everything else, for every role, is a 404.
    viewer_403 = {"dashboards:alert_remove", "dashboards:budget_delete", "dashboards:member_role"}
    billing_403 = {"dashboards:member_role"}  # only owners change roles: refused first
    wrong = {
        key: status
        for key, status in answers.items()
        if status
        != (
            403
            if (key[1] == Role.MEMBER and key[0] in viewer_403)
            or (key[1] == Role.BILLING and key[0] in billing_403)
            else 404
        )
    }
    assert wrong == {}, wrong
    after = {
        "rules": AlertRule.objects.filter(account=w.b).count(),
        "budgets": Budget.objects.filter(account=w.b).count(),
        "members": Membership.objects.filter(account=w.b).count(),
        "roles": sorted(Membership.objects.filter(account=w.b).values_list("role", flat=True)),
    }
    assert after == before
