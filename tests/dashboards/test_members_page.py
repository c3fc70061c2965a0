"""The Members page and the invitation link: what each role sees and may do, the
invitation from the form to the e-mail to a new sign-in, and the refusals."""

import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.core import mail
from django.urls import reverse

from billing.models import Membership
from billing.models_members import Invitation
from billing.services.accounts import account_create
from billing.services.members import invitation_create
from tests.factories import make_user

pytestmark = pytest.mark.django_db
Role = Membership.Role


@pytest.fixture
def account():
    return account_create(name="Acme Analytics", billing_email="billing@acme.example")


@pytest.fixture
def people(account):
    return {
        "owner": make_user(account, "olive", Role.OWNER, "olive@acme.example"),
        "billing": make_user(account, "bea", Role.BILLING, "bea@acme.example"),
        "viewer": make_user(account, "vic", Role.MEMBER, "vic@acme.example"),
    }


def _membership(user) -> Membership:
    return Membership.objects.get(user=user)


def _role_options(html: str) -> list[str]:
    form = html[html.index('data-testid="invite-form"') :]
    select = form[form.index('name="role"') : form.index("</select>")]
    return re.findall(r'<option value="(\w+)"', select)


def test_each_role_sees_the_members_and_what_it_may_do(client, account, people):
    url = reverse("dashboards:members")
    client.force_login(people["owner"])
    html = client.get(url).content.decode()
    for user, role in ((people["owner"], "owner"), (people["billing"], "billing")):
        assert f'data-testid="member-{_membership(user).pk}" data-role="{role}"' in html
    assert f'data-role="{Role.MEMBER}"' in html and ">Viewer<" in html
    assert _role_options(html) == ["owner", "billing", "member"]
    assert html.count('name="role"') == 1 + 3  # the invite form and a select per member
    assert 'data-testid="my-alerts-form"' in html
    assert 'aria-current="page">Members<' in html

    client.force_login(people["billing"])
    html = client.get(url).content.decode()
    assert _role_options(html) == ["member"]  # billing members invite viewers only
    assert html.count('name="role"') == 1  # no role changes
    assert f'data-testid="remove-{_membership(people["viewer"]).pk}"' in html
    assert f'data-testid="remove-{_membership(people["owner"]).pk}"' not in html

    client.force_login(people["viewer"])
    html = client.get(url).content.decode()
    assert 'data-testid="invite-form"' not in html and 'name="role"' not in html
    assert f'data-testid="remove-{_membership(people["billing"]).pk}"' not in html
    assert f'data-testid="remove-{_membership(people["viewer"]).pk}">Leave<' in html
    assert 'data-testid="my-alerts-form"' in html


def test_invite_sign_up_and_join(client, account, people, settings):
    settings.SITE_URL = "https://meter.example"
    client.force_login(people["owner"])
    response = client.post(
        reverse("dashboards:member_invite"), {"email": "Nina@Example.com", "role": "billing"}
    )
    assert response.status_code == 302
    [message] = mail.outbox
    assert message.to == ["nina@example.com"]
    link = re.search(r"https://meter\.example(/dashboard/invitations/[\w-]+/)", message.body)
    path = link.group(1)
    page = client.get(reverse("dashboards:members")).content.decode()
    invitation = Invitation.objects.get(email="nina@example.com")
    assert f'data-testid="invitation-{invitation.pk}"' in page

    client.logout()
    form = client.get(path)
    assert form.status_code == 200 and 'data-testid="signup-form"' in form.content.decode()
    assert 'value="nina@example.com"' in form.content.decode()  # the suggested username
    mismatch = client.post(
        path, {"username": "nina", "password1": "long-pass-9x", "password2": "other-pass-9x"}
    )
    assert mismatch.status_code == 400 and 'data-code="mismatch"' in mismatch.content.decode()
    joined = client.post(
        path, {"username": "nina", "password1": "long-pass-9x", "password2": "long-pass-9x"}
    )
    assert joined.status_code == 302 and joined["Location"] == reverse("dashboards:home")
    nina = get_user_model().objects.get(username="nina")
    assert (nina.email, _membership(nina).role) == ("nina@example.com", Role.BILLING)
    assert client.get(reverse("dashboards:members")).status_code == 200  # signed in
    again = client.get(path)
    assert again.status_code == 410 and 'data-code="used"' in again.content.decode()


def test_signed_in_user_accepts_and_other_accounts_user_is_refused(client, account, people):
    other = account_create(name="Globex", billing_email="b@globex.example")
    gus = make_user(other, "gus", Role.OWNER, "gus@globex.example")
    _, raw = invitation_create(
        account=account, email="gus@globex.example", role=Role.MEMBER, invited_by=people["owner"]
    )
    path = reverse("dashboards:invitation_accept", args=[raw])
    client.force_login(gus)
    refused = client.post(path)
    assert refused.status_code == 409 and 'data-code="other_account"' in refused.content.decode()
    assert _membership(gus).account == other
    loner = get_user_model().objects.create_user("lone", password="pw-lone-123")
    client.force_login(loner)
    assert 'data-testid="accept"' in client.get(path).content.decode()
    assert client.post(path).status_code == 302
    assert _membership(loner).account == account


def test_expired_revoked_and_unknown_links(client, account, people, settings):
    settings.BILLING_INVITATION_TTL_HOURS = 72
    t0 = datetime(2026, 3, 10, 9, tzinfo=UTC)
    with time_machine.travel(t0, tick=False):
        _, raw = invitation_create(
            account=account, email="late@example.com", role=Role.MEMBER, invited_by=people["owner"]
        )
    path = reverse("dashboards:invitation_accept", args=[raw])
    with time_machine.travel(t0 + timedelta(hours=73), tick=False):  # 1 hour after expiry
        expired = client.get(path)
        posted = client.post(
            path, {"username": "late", "password1": "long-pass-9x", "password2": "long-pass-9x"}
        )
    assert expired.status_code == 410 and 'data-code="expired"' in expired.content.decode()
    assert posted.status_code == 410
    assert not get_user_model().objects.filter(username="late").exists()

    invitation, raw = invitation_create(
        account=account, email="rev@example.com", role=Role.MEMBER, invited_by=people["owner"]
    )
    client.force_login(people["owner"])
    assert (
        client.post(reverse("dashboards:invitation_revoke", args=[invitation.pk])).status_code
        == 302
    )
    client.logout()
    revoked = client.get(reverse("dashboards:invitation_accept", args=[raw]))
    assert revoked.status_code == 410 and 'data-code="revoked"' in revoked.content.decode()
    unknown = client.get(reverse("dashboards:invitation_accept", args=["no-such-token"]))
    assert unknown.status_code == 404 and 'data-code="not_found"' in unknown.content.decode()


def test_refusals_by_role(client, account, people):
    invite = reverse("dashboards:member_invite")
    client.force_login(people["billing"])
    owner_invite = client.post(invite, {"email": "x@example.com", "role": "owner"})
    assert owner_invite.status_code == 400
    assert 'data-code="invalid_choice"' in owner_invite.content.decode()
    viewer_pk = _membership(people["viewer"]).pk
    role = reverse("dashboards:member_role", args=[viewer_pk])
    assert client.post(role, {"role": "billing"}).status_code == 403
    client.force_login(people["viewer"])
    assert client.post(invite, {"email": "x@example.com", "role": "member"}).status_code == 403
    owner_pk = _membership(people["owner"]).pk
    assert client.post(reverse("dashboards:member_remove", args=[owner_pk])).status_code == 403
    assert not Invitation.objects.exists()
    assert _membership(people["viewer"]).role == Role.MEMBER


def test_owner_changes_roles_but_not_the_last_owners(client, account, people):
    client.force_login(people["owner"])
    viewer_pk = _membership(people["viewer"]).pk
    assert (
        client.post(
            reverse("dashboards:member_role", args=[viewer_pk]), {"role": "billing"}
        ).status_code
        == 302
    )
    assert _membership(people["viewer"]).role == Role.BILLING
    owner_pk = _membership(people["owner"]).pk
    demote = client.post(reverse("dashboards:member_role", args=[owner_pk]), {"role": "member"})
    assert demote.status_code == 400 and 'data-code="last_owner"' in demote.content.decode()
    leave = client.post(reverse("dashboards:member_remove", args=[owner_pk]))
    assert leave.status_code == 400 and _membership(people["owner"]).role == Role.OWNER
    duplicate = client.post(
        reverse("dashboards:member_invite"), {"email": "BEA@acme.example", "role": "member"}
    )
    assert (
        duplicate.status_code == 400 and 'data-code="already_member"' in duplicate.content.decode()
    )


def test_another_accounts_members_and_invitations_are_404(client, account, people):
    other = account_create(name="Globex", billing_email="b@globex.example")
    gus = make_user(other, "gus", Role.MEMBER, "gus@globex.example")
    invitation, _ = invitation_create(
        account=other, email="x@example.com", role=Role.MEMBER, invited_by=None, staff=True
    )
    client.force_login(people["owner"])
    gus_pk = _membership(gus).pk
    assert client.post(reverse("dashboards:member_remove", args=[gus_pk])).status_code == 404
    assert (
        client.post(reverse("dashboards:member_role", args=[gus_pk]), {"role": "owner"}).status_code
        == 404
    )
    for name in ("dashboards:invitation_revoke", "dashboards:invitation_resend"):
        assert client.post(reverse(name, args=[invitation.pk])).status_code == 404
    assert client.get(f"{reverse('dashboards:members')}?account={other.pk}").status_code == 404
    assert Membership.objects.filter(pk=gus_pk).exists()
    invitation.refresh_from_db()
    assert invitation.revoked_at is None


def test_each_member_chooses_their_own_alerts(client, account, people):
    client.force_login(people["viewer"])
    response = client.post(
        reverse("dashboards:member_alerts"),
        {"receives_alerts": "on", "muted_alert_kinds": ["spend", "budget"]},
    )
    assert response.status_code == 302
    vic = _membership(people["viewer"])
    assert (vic.receives_alerts, vic.muted_alert_kinds) == (True, ["budget", "spend"])
    assert _membership(people["owner"]).muted_alert_kinds == []  # only their own
    off = client.post(reverse("dashboards:member_alerts"), {})
    assert off.status_code == 302 and _membership(people["viewer"]).receives_alerts is False
    bad = client.post(reverse("dashboards:member_alerts"), {"muted_alert_kinds": ["nonsense"]})
    assert bad.status_code == 400
    page = client.get(reverse("dashboards:members")).content.decode()
    assert 'name="receives_alerts"' in page and "Budget warnings" in page


def test_resend_replaces_the_link(client, account, people):
    client.force_login(people["owner"])
    old, old_raw = invitation_create(
        account=account, email="re@example.com", role=Role.MEMBER, invited_by=people["owner"]
    )
    assert client.post(reverse("dashboards:invitation_resend", args=[old.pk])).status_code == 302
    [message] = mail.outbox
    assert old_raw not in message.body
    old.refresh_from_db()
    assert old.revoked_at is not None
    assert Invitation.objects.filter(email="re@example.com", revoked_at__isnull=True).count() == 1


def _staff(username: str, *codenames: str):
    from django.contrib.auth.models import Permission

    user = get_user_model().objects.create_user(username, password="pw-staff-123", is_staff=True)
    for codename in codenames:
        app, name = codename.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app, codename=name)
        )
    return get_user_model().objects.get(pk=user.pk)


def test_staff_viewing_as_need_a_permission_per_change(client, account, people):
    query = f"?account={account.pk}"
    client.force_login(_staff("support", "billing.view_account"))
    page = client.get(reverse("dashboards:members") + query)
    html = page.content.decode()
    assert page.status_code == 200 and "as staff" in html
    assert 'data-testid="invite-form"' not in html and 'data-testid="my-alerts-form"' not in html
    actions = re.findall(r'(?:href|action)="(/dashboard/[^"]*)"', html)
    actions = [url for url in actions if url != "/dashboard/"]  # the banner's "exit"
    assert len(actions) >= 5 and all(f"account={account.pk}" in url for url in actions)
    invite = reverse("dashboards:member_invite") + query
    refused = client.post(invite, {"email": "s@example.com", "role": "owner"})
    assert refused.status_code == 403 and "billing.add_invitation" in refused.content.decode()
    viewer_pk = _membership(people["viewer"]).pk
    role = reverse("dashboards:member_role", args=[viewer_pk]) + query
    assert client.post(role, {"role": "owner"}).status_code == 403
    assert client.post(reverse("dashboards:member_alerts") + query, {}).status_code == 403

    client.force_login(
        _staff(
            "admin", "billing.view_account", "billing.add_invitation", "billing.change_membership"
        )
    )
    html = client.get(reverse("dashboards:members") + query).content.decode()
    assert _role_options(html) == ["owner", "billing", "member"]
    assert client.post(invite, {"email": "s@example.com", "role": "owner"}).status_code == 302
    assert Invitation.objects.get(email="s@example.com").role == Role.OWNER
    assert client.post(role, {"role": "owner"}).status_code == 302
    assert _membership(people["viewer"]).role == Role.OWNER
