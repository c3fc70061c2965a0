"""billing.services.members: invitations (hashed, single use, expiring, replaced) and the
role rules (who may invite, remove, change roles; the last owner stays)."""

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.core import mail

from billing.models import Membership
from billing.models_members import Invitation
from billing.services.accounts import account_create
from billing.services.members import (
    MemberError,
    invitation_accept,
    invitation_accept_signup,
    invitation_create,
    invitation_email_send,
    invitation_revoke,
    member_remove,
    member_set_alerts,
    member_set_role,
)
from tests.factories import make_user

pytestmark = pytest.mark.django_db
Role = Membership.Role
T0 = datetime(2026, 3, 10, 9, tzinfo=UTC)


@pytest.fixture
def account():
    return account_create(name="Acme Analytics", billing_email="billing@acme.example")


@pytest.fixture
def owner(account):
    return make_user(account, "olive", Role.OWNER, "olive@acme.example")


def _loner(username: str):
    return get_user_model().objects.create_user(username, password=f"pw-{username}-123")


def _code(exc_info) -> str:
    return exc_info.value.code


def test_token_is_stored_as_its_sha256_and_expires_after_the_ttl(account, owner, settings):
    settings.BILLING_INVITATION_TTL_HOURS = 72
    with time_machine.travel(T0, tick=False):
        invitation, raw = invitation_create(
            account=account, email=" Vic@Example.COM ", role=Role.MEMBER, invited_by=owner
        )
    assert len(raw) >= 43  # token_urlsafe(32): 32 random bytes, 43 base64 characters
    assert invitation.token_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert raw not in invitation.token_hash
    assert invitation.email == "vic@example.com"
    assert invitation.expires_at == T0 + timedelta(hours=72)  # Mar 10 09:00 + 72 h = Mar 13


def test_accept_makes_the_membership_once(account, owner):
    invitation, raw = invitation_create(
        account=account, email="bill@example.com", role=Role.BILLING, invited_by=owner
    )
    user = _loner("bill")
    membership = invitation_accept(raw_token=raw, user=user)
    assert (membership.account, membership.role) == (account, Role.BILLING)
    invitation.refresh_from_db()
    assert invitation.accepted_at is not None and invitation.accepted_by == user
    with pytest.raises(MemberError) as reused:
        invitation_accept(raw_token=raw, user=_loner("someone"))
    assert _code(reused) == "used"
    assert Membership.objects.filter(account=account).count() == 2


def test_expired_link_is_refused(account, owner, settings):
    settings.BILLING_INVITATION_TTL_HOURS = 72
    with time_machine.travel(T0, tick=False):
        _, raw = invitation_create(
            account=account, email="late@example.com", role=Role.MEMBER, invited_by=owner
        )
    # 72 hours after T0 exactly, the link no longer works (expires_at <= now).
    with (
        time_machine.travel(T0 + timedelta(hours=72), tick=False),
        pytest.raises(MemberError) as expired,
    ):
        invitation_accept(raw_token=raw, user=_loner("late"))
    assert _code(expired) == "expired"
    with time_machine.travel(T0 + timedelta(hours=71, minutes=59), tick=False):
        assert invitation_accept(raw_token=raw, user=_loner("early")).role == Role.MEMBER


def test_revoked_and_unknown_links_are_refused(account, owner):
    invitation, raw = invitation_create(
        account=account, email="rev@example.com", role=Role.MEMBER, invited_by=owner
    )
    invitation_revoke(account=account, invitation_id=invitation.pk, by=owner)
    with pytest.raises(MemberError) as revoked:
        invitation_accept(raw_token=raw, user=_loner("rev"))
    assert _code(revoked) == "revoked"
    with pytest.raises(MemberError) as unknown:
        invitation_accept(raw_token="not-a-token", user=_loner("nobody"))
    assert _code(unknown) == "not_found"


def test_a_new_invitation_replaces_the_open_one(account, owner):
    first, first_raw = invitation_create(
        account=account, email="dup@example.com", role=Role.MEMBER, invited_by=owner
    )
    second, second_raw = invitation_create(
        account=account, email="DUP@example.com", role=Role.BILLING, invited_by=owner
    )
    first.refresh_from_db()
    assert first.revoked_at is not None
    open_ = Invitation.objects.filter(account=account, revoked_at__isnull=True)
    assert list(open_) == [second]
    with pytest.raises(MemberError) as old:
        invitation_accept(raw_token=first_raw, user=_loner("dup1"))
    assert _code(old) == "revoked"
    assert invitation_accept(raw_token=second_raw, user=_loner("dup2")).role == Role.BILLING


def test_existing_member_and_invalid_role_and_email_are_refused(account, owner):
    make_user(account, "vera", Role.MEMBER, "vera@acme.example")
    cases = [
        ({"email": "VERA@acme.example", "role": Role.MEMBER}, "already_member", "email"),
        ({"email": "x@example.com", "role": "admin"}, "invalid_role", "role"),
        ({"email": "not an address", "role": Role.MEMBER}, "invalid_email", "email"),
    ]
    for kwargs, code, field in cases:
        with pytest.raises(MemberError) as refused:
            invitation_create(account=account, invited_by=owner, **kwargs)
        assert (refused.value.code, refused.value.field) == (code, field)
    assert not Invitation.objects.exists()


def test_who_may_invite_which_role(account, owner):
    billing = make_user(account, "bea", Role.BILLING, "bea@acme.example")
    viewer = make_user(account, "vic", Role.MEMBER, "vic@acme.example")
    for role in (Role.OWNER, Role.BILLING, Role.MEMBER):
        invitation_create(account=account, email=f"o-{role}@x.example", role=role, invited_by=owner)
    invitation_create(account=account, email="b-v@x.example", role=Role.MEMBER, invited_by=billing)
    for by, role in ((billing, Role.BILLING), (billing, Role.OWNER), (viewer, Role.MEMBER)):
        with pytest.raises(MemberError) as refused:
            invitation_create(account=account, email="no@x.example", role=role, invited_by=by)
        assert _code(refused) == "not_allowed"
    assert Invitation.objects.count() == 4


def test_a_user_of_another_account_cannot_accept(account, owner):
    other = account_create(name="Globex", billing_email="b@globex.example")
    globex_user = make_user(other, "gus", Role.OWNER, "gus@globex.example")
    invitation, raw = invitation_create(
        account=account, email="gus@globex.example", role=Role.MEMBER, invited_by=owner
    )
    with pytest.raises(MemberError) as refused:
        invitation_accept(raw_token=raw, user=globex_user)
    assert _code(refused) == "other_account"
    invitation.refresh_from_db()
    assert invitation.accepted_at is None  # still usable by a new sign-in
    with pytest.raises(MemberError) as again:
        invitation_accept(raw_token=raw, user=owner)
    assert _code(again) == "already_member"


def test_signup_accepts_or_creates_nothing(account, owner):
    _, raw = invitation_create(
        account=account, email="new@example.com", role=Role.MEMBER, invited_by=owner
    )
    with pytest.raises(MemberError) as weak:
        invitation_accept_signup(raw_token=raw, username="newbie", password="123")
    assert (weak.value.code, weak.value.field) == ("invalid_password", "password")
    with pytest.raises(MemberError) as taken:
        invitation_accept_signup(raw_token=raw, username="OLIVE", password="long-pass-phrase-9")
    assert _code(taken) == "username_taken"
    assert not get_user_model().objects.filter(username="newbie").exists()
    user = invitation_accept_signup(raw_token=raw, username="newbie", password="long-pass-phrase-9")
    assert user.email == "new@example.com" and user.check_password("long-pass-phrase-9")
    assert Membership.objects.get(user=user).role == Role.MEMBER


def test_last_owner_can_be_neither_removed_nor_demoted(account, owner):
    own = Membership.objects.get(user=owner)
    with pytest.raises(MemberError) as removed:
        member_remove(account=account, membership_id=own.pk, by=owner)
    assert _code(removed) == "last_owner"
    with pytest.raises(MemberError) as demoted:
        member_set_role(account=account, membership_id=own.pk, role=Role.MEMBER, by=owner)
    assert _code(demoted) == "last_owner"
    second = make_user(account, "otto", Role.OWNER, "otto@acme.example")
    member_set_role(account=account, membership_id=own.pk, role=Role.BILLING, by=second)
    assert Membership.objects.get(user=owner).role == Role.BILLING
    with pytest.raises(MemberError) as last:
        member_remove(
            account=account, membership_id=Membership.objects.get(user=second).pk, by=second
        )
    assert _code(last) == "last_owner"


def test_only_owners_change_roles_and_billing_removes_only_viewers(account, owner):
    billing = make_user(account, "bea", Role.BILLING, "bea@acme.example")
    viewer = make_user(account, "vic", Role.MEMBER, "vic@acme.example")
    vic = Membership.objects.get(user=viewer)
    with pytest.raises(MemberError) as refused:
        member_set_role(account=account, membership_id=vic.pk, role=Role.BILLING, by=billing)
    assert _code(refused) == "not_allowed"
    own = Membership.objects.get(user=owner)
    with pytest.raises(MemberError) as not_owner:
        member_remove(account=account, membership_id=own.pk, by=billing)
    assert _code(not_owner) == "not_allowed"
    member_remove(account=account, membership_id=vic.pk, by=billing)
    assert not Membership.objects.filter(user=viewer).exists()
    # Anyone may leave: the billing member removes themselves.
    bea = Membership.objects.get(user=billing)
    member_remove(account=account, membership_id=bea.pk, by=billing)
    assert list(Membership.objects.filter(account=account)) == [own]


def test_another_accounts_member_or_invitation_is_not_found(account, owner):
    other = account_create(name="Globex", billing_email="b@globex.example")
    gus = Membership.objects.get(user=make_user(other, "gus", Role.MEMBER, "gus@globex.example"))
    with pytest.raises(MemberError) as member:
        member_remove(account=account, membership_id=gus.pk, by=owner)
    assert _code(member) == "not_found"
    invitation, _ = invitation_create(
        account=other, email="x@example.com", role=Role.MEMBER, invited_by=None, staff=True
    )
    with pytest.raises(MemberError) as revoke:
        invitation_revoke(account=account, invitation_id=invitation.pk, by=owner)
    assert _code(revoke) == "not_found"


def test_alert_choices_are_saved_sorted_and_unique(account, owner):
    own = Membership.objects.get(user=owner)
    member_set_alerts(
        membership=own, receives_alerts=True, muted_kinds=["spend", "budget", "spend"]
    )
    own.refresh_from_db()
    assert (own.receives_alerts, own.muted_alert_kinds) == (True, ["budget", "spend"])
    member_set_alerts(membership=own, receives_alerts=False, muted_kinds=[])
    own.refresh_from_db()
    assert (own.receives_alerts, own.muted_alert_kinds) == (False, [])


def test_invitation_email_carries_the_accept_link(account, owner, settings):
    settings.SITE_URL = "https://meter.example"
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    invitation, raw = invitation_create(
        account=account, email="vic@example.com", role=Role.MEMBER, invited_by=owner
    )
    assert invitation_email_send(invitation=invitation, raw_token=raw)
    [message] = mail.outbox
    assert message.to == ["vic@example.com"]
    assert f"https://meter.example/dashboard/invitations/{raw}/" in message.body
    assert "Acme Analytics" in message.body and "as Viewer" in message.body
    assert "&amp;" not in message.body


# Who alert e-mails go to (usage.selectors.alerts.alert_recipients) --------------------


def test_alert_recipients_follow_each_members_choice(account, owner, settings):
    from usage.selectors.alerts import alert_recipients

    settings.BILLING_VIEWERS_SEE_AMOUNTS = True
    billing = make_user(account, "bea", Role.BILLING, "bea@acme.example")
    viewer = make_user(account, "vic", Role.MEMBER, "vic@acme.example")
    make_user(account, "nomail", Role.OWNER, "")  # no address: never a recipient
    everyone = ["bea@acme.example", "olive@acme.example", "vic@acme.example"]
    assert alert_recipients(account=account, kind="usage_share") == everyone
    member_set_alerts(membership=Membership.objects.get(user=billing), receives_alerts=True,
                      muted_kinds=["spend", "budget"])  # fmt: skip
    member_set_alerts(membership=Membership.objects.get(user=viewer), receives_alerts=False,
                      muted_kinds=[])  # fmt: skip
    assert alert_recipients(account=account, kind="usage_share") == [
        "bea@acme.example",
        "olive@acme.example",
    ]
    assert alert_recipients(account=account, kind="spend") == ["olive@acme.example"]
    assert alert_recipients(account=account, kind="budget") == ["olive@acme.example"]
    member_set_alerts(membership=Membership.objects.get(user=owner), receives_alerts=False,
                      muted_kinds=[])  # fmt: skip
    assert alert_recipients(account=account, kind="budget") == []  # nobody: none sent


def test_viewers_get_no_alert_emails_while_amounts_are_hidden_from_them(account, owner, settings):
    from usage.selectors.alerts import alert_recipients

    make_user(account, "vic", Role.MEMBER, "vic@acme.example")
    settings.BILLING_VIEWERS_SEE_AMOUNTS = False  # every alert e-mail states the spend
    assert alert_recipients(account=account, kind="usage_share") == ["olive@acme.example"]
    settings.BILLING_VIEWERS_SEE_AMOUNTS = True
    assert alert_recipients(account=account, kind="usage_share") == [
        "olive@acme.example",
        "vic@acme.example",
    ]


def test_an_account_without_members_alerts_its_billing_email(account):
    from usage.selectors.alerts import alert_recipients

    assert alert_recipients(account=account, kind="spend") == ["billing@acme.example"]


def test_muted_kind_is_not_emailed_through_evaluation(
    pro_account, django_capture_on_commit_callbacks
):
    """The default usage-share rules fire (10,500 of 10,000 API calls: 80% and 100%); the
    owner muted that kind, so only the billing member is e-mailed; a member who muted
    everything still sees the alert recorded."""
    from usage.models import AlertDelivery
    from usage.services.alerts import alerts_evaluate_account

    olga = make_user(pro_account, "olga", Role.OWNER, "olga@acme.example")
    make_user(pro_account, "bill", Role.BILLING, "bill@acme.example")
    member_set_alerts(membership=Membership.objects.get(user=olga), receives_alerts=True,
                      muted_kinds=["usage_share"])  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        sent = alerts_evaluate_account(account=pro_account)
    assert sorted(d.threshold for d in sent) == [8_000, 10_000]
    assert [m.to for m in mail.outbox] == [["bill@acme.example"], ["bill@acme.example"]]
    Membership.objects.filter(account=pro_account).update(receives_alerts=False)
    mail.outbox.clear()
    AlertDelivery.objects.all().delete()
    with django_capture_on_commit_callbacks(execute=True):
        again = alerts_evaluate_account(account=pro_account)
    assert len(again) == 2 and mail.outbox == []
    assert all(d.sent_at is not None and d.recipients == "" for d in AlertDelivery.objects.all())
