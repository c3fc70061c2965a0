"""Members of an account and invitations to join it.

Roles: owners do everything (invite any role, change roles, remove anyone); billing
members see money and manage budgets and payment, and may invite, remove and revoke
invitations of viewers only; viewers see usage and choose their own alert e-mails.
Anyone may leave (remove themselves), except the last owner. An account always keeps at
least one owner: the last one can be neither removed nor demoted.

An invitation is a single-use link that expires (``BILLING_INVITATION_TTL_HOURS``):
``secrets.token_urlsafe(32)`` sent by e-mail, only its SHA-256 stored. A new invitation
to the same address replaces the open one (which is revoked). Accepting makes the
membership; a user belongs to one account only (``membership_one_account_per_user``).

Staff acting on a customer's account (``staff=True``) are not members: the view has
checked their Django permissions, so the role rules do not apply to them; the account's
own rules (last owner, already a member) still do.

Errors are ``MemberError(code, field, message)``: the code for tests and templates, the
form field it belongs to (or None), and a sentence for the customer.
"""

import hashlib
import logging
import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from billing.models import Account, Membership
from billing.models_members import Invitation

logger = logging.getLogger(__name__)
Role = Membership.Role
ROLES = frozenset(Role.values)


class MemberError(Exception):
    def __init__(self, code: str, field: str | None, message: str):
        super().__init__(message)
        self.code, self.field, self.message = code, field, message


# Helpers -------------------------------------------------------------------------------


def token_hash(raw_token: str) -> str:
    return hashlib.sha256(raw_token.encode()).hexdigest()


def normalize_email(email: str) -> str:
    return (email or "").strip().lower()


def role_of(*, account: Account, user) -> str | None:
    """The user's role on the account, or None when not a member."""
    if user is None or not user.is_authenticated:
        return None
    return account.memberships.filter(user=user).values_list("role", flat=True).first()


def roles_may_invite(*, role: str | None) -> tuple[str, ...]:
    """The roles a member with ``role`` may invite (and revoke invitations of, and remove):
    owners any, billing members viewers only, viewers none."""
    if role == Role.OWNER:
        return (Role.OWNER, Role.BILLING, Role.MEMBER)
    if role == Role.BILLING:
        return (Role.MEMBER,)
    return ()


def _actor_may(*, account: Account, by, staff: bool, role: str) -> bool:
    return staff or role in roles_may_invite(role=role_of(account=account, user=by))


def _owners(account_id: int):
    return Membership.objects.filter(account_id=account_id, role=Role.OWNER)


def _lock_account(account: Account) -> Account:
    """Serialize member changes of one account (last-owner checks, open invitations)."""
    return Account.objects.select_for_update().get(pk=account.pk)


def invitation_is_open(invitation: Invitation, *, now=None) -> bool:
    now = now or timezone.now()
    return (
        invitation.accepted_at is None
        and invitation.revoked_at is None
        and invitation.expires_at > now
    )


# Invitations ---------------------------------------------------------------------------


@transaction.atomic
def invitation_create(
    *, account: Account, email: str, role: str, invited_by, staff: bool = False
) -> tuple[Invitation, str]:
    """A new invitation and its raw token (for the e-mail only). Replaces (revokes) the
    open invitation to the same address."""
    address = normalize_email(email)
    try:
        validate_email(address)
    except ValidationError as exc:
        raise MemberError("invalid_email", "email", "Enter a valid e-mail address.") from exc
    if role not in ROLES:
        raise MemberError("invalid_role", "role", "Choose owner, billing or viewer.")
    if not _actor_may(account=account, by=invited_by, staff=staff, role=role):
        raise MemberError(
            "not_allowed",
            "role",
            f"You may not invite someone as {Role(role).label.lower()}.",
        )
    _lock_account(account)
    if account.memberships.filter(user__email__iexact=address).exists():
        raise MemberError("already_member", "email", f"{address} is already a member.")
    now = timezone.now()
    Invitation.objects.filter(
        account=account, email=address, accepted_at__isnull=True, revoked_at__isnull=True
    ).update(revoked_at=now)
    raw_token = secrets.token_urlsafe(32)
    invitation = Invitation.objects.create(
        account=account,
        email=address,
        role=role,
        token_hash=token_hash(raw_token),
        invited_by=invited_by if getattr(invited_by, "pk", None) else None,
        expires_at=now + timedelta(hours=settings.BILLING_INVITATION_TTL_HOURS),
    )
    return invitation, raw_token


def invitation_accept_url(raw_token: str) -> str:
    return settings.SITE_URL + reverse("dashboards:invitation_accept", args=[raw_token])


def invitation_email_send(*, invitation: Invitation, raw_token: str) -> bool:
    """E-mail the invitation's link; False (logged) when the mail could not be sent."""
    inviter = invitation.invited_by
    context = {
        "invitation": invitation,
        "account": invitation.account,
        "role": invitation.get_role_display(),
        "inviter": (inviter.get_full_name() or inviter.email or inviter.get_username())
        if inviter
        else "",
        "accept_url": invitation_accept_url(raw_token),
        "hours": settings.BILLING_INVITATION_TTL_HOURS,
    }
    try:
        send_mail(
            subject=f"You are invited to {invitation.account.name} on Meterdesk",
            message=render_to_string("billing/email/invitation.txt", context),
            from_email=None,
            recipient_list=[invitation.email],
        )
    except Exception:
        logger.exception("invitation e-mail failed for invitation %s", invitation.pk)
        return False
    return True


def invitation_for_token(*, raw_token: str) -> Invitation:
    """The invitation of a link, whatever its state, else ``not_found``."""
    invitation = (
        Invitation.objects.select_related("account")
        .filter(token_hash=token_hash(raw_token))
        .first()
    )
    if invitation is None:
        raise MemberError("not_found", None, "This invitation link is not valid.")
    return invitation


def invitation_check_open(invitation: Invitation, *, now=None) -> None:
    """Raise the reason an invitation can no longer be accepted."""
    now = now or timezone.now()
    if invitation.revoked_at is not None:
        raise MemberError("revoked", None, "This invitation was withdrawn. Ask for a new one.")
    if invitation.accepted_at is not None:
        raise MemberError("used", None, "This invitation has already been used.")
    if invitation.expires_at <= now:
        raise MemberError("expired", None, "This invitation has expired. Ask for a new one.")


@transaction.atomic
def invitation_accept(*, raw_token: str, user) -> Membership:
    """Join the invitation's account as ``user`` with the invited role; the link is
    then used up."""
    found = invitation_for_token(raw_token=raw_token)
    invitation = Invitation.objects.select_for_update().get(pk=found.pk)
    invitation_check_open(invitation)
    existing = Membership.objects.filter(user=user).first()
    if existing is not None and existing.account_id == invitation.account_id:
        raise MemberError("already_member", None, "You are already a member of this account.")
    if existing is not None:
        raise MemberError(
            "other_account",
            None,
            "Your sign-in belongs to another account; a user can be in one account only. "
            "Sign out and accept with a new sign-in.",
        )
    try:
        with transaction.atomic():
            membership = Membership.objects.create(
                account_id=invitation.account_id, user=user, role=invitation.role
            )
    except IntegrityError as exc:  # joined another account meanwhile
        raise MemberError(
            "other_account", None, "Your sign-in belongs to another account."
        ) from exc
    invitation.accepted_at, invitation.accepted_by = timezone.now(), user
    invitation.save(update_fields=["accepted_at", "accepted_by"])
    return membership


@transaction.atomic
def invitation_accept_signup(*, raw_token: str, username: str, password: str):
    """A new user (``username``, ``password``, the invitation's e-mail) who accepts the
    invitation; nothing is created when the invitation cannot be accepted."""
    invitation = invitation_for_token(raw_token=raw_token)
    invitation_check_open(invitation)
    User = get_user_model()
    username = (username or "").strip()
    if not username:
        raise MemberError("invalid_username", "username", "Choose a username.")
    if User.objects.filter(username__iexact=username).exists():
        raise MemberError(
            "username_taken", "username", "That username is taken. Sign in if it is yours."
        )
    user = User(username=username, email=invitation.email)
    try:
        User._meta.get_field("username").run_validators(username)
    except ValidationError as exc:
        raise MemberError("invalid_username", "username", " ".join(exc.messages)) from exc
    try:
        validate_password(password, user=user)
    except ValidationError as exc:
        raise MemberError("invalid_password", "password", " ".join(exc.messages)) from exc
    user.set_password(password)
    user.save()
    membership = invitation_accept(raw_token=raw_token, user=user)
    return membership.user


@transaction.atomic
def invitation_revoke(
    *, account: Account, invitation_id: int, by, staff: bool = False
) -> Invitation:
    invitation = (
        Invitation.objects.select_for_update()
        .filter(
            account=account, pk=invitation_id, accepted_at__isnull=True, revoked_at__isnull=True
        )
        .first()
    )
    if invitation is None:
        raise MemberError("not_found", None, "No such open invitation.")
    if not _actor_may(account=account, by=by, staff=staff, role=invitation.role):
        raise MemberError("not_allowed", None, "You may not withdraw this invitation.")
    invitation.revoked_at = timezone.now()
    invitation.save(update_fields=["revoked_at"])
    return invitation


def invitations_pending(*, account: Account) -> list[Invitation]:
    """Open invitations (including expired ones not yet replaced), newest first."""
    return list(
        Invitation.objects.filter(
            account=account, accepted_at__isnull=True, revoked_at__isnull=True
        ).select_related("invited_by")
    )


# Members -------------------------------------------------------------------------------


def _membership(account: Account, membership_id: int) -> Membership:
    membership = (
        Membership.objects.select_for_update()
        .select_related("user")
        .filter(account=account, pk=membership_id)
        .first()
    )
    if membership is None:
        raise MemberError("not_found", None, "No such member.")
    return membership


@transaction.atomic
def member_remove(*, account: Account, membership_id: int, by, staff: bool = False) -> None:
    """Remove a member (or leave, when ``by`` is that member). Owners remove anyone,
    billing members viewers; never the last owner."""
    _lock_account(account)
    membership = _membership(account, membership_id)
    leaving = not staff and membership.user_id == getattr(by, "pk", None)
    if not leaving and not _actor_may(account=account, by=by, staff=staff, role=membership.role):
        raise MemberError("not_allowed", None, "You may not remove this member.")
    if membership.role == Role.OWNER and _owners(account.pk).count() <= 1:
        raise MemberError(
            "last_owner",
            None,
            "The account's last owner cannot be removed: make another owner first.",
        )
    membership.delete()


@transaction.atomic
def member_set_role(
    *, account: Account, membership_id: int, role: str, by, staff: bool = False
) -> Membership:
    """Only owners change roles (and staff with the permission); the last owner stays one."""
    if role not in ROLES:
        raise MemberError("invalid_role", "role", "Choose owner, billing or viewer.")
    if not staff and role_of(account=account, user=by) != Role.OWNER:
        raise MemberError("not_allowed", "role", "Only owners may change roles.")
    _lock_account(account)
    membership = _membership(account, membership_id)
    if membership.role == role:
        return membership
    if membership.role == Role.OWNER and _owners(account.pk).count() <= 1:
        raise MemberError(
            "last_owner",
            "role",
            "The account's last owner cannot be demoted: make another owner first.",
        )
    membership.role = role
    membership.save(update_fields=["role"])
    return membership


def member_set_alerts(*, membership: Membership, receives_alerts: bool, muted_kinds) -> Membership:
    """A member's own alert e-mails: none (``receives_alerts`` False) or all but the
    muted kinds (alert rule kinds and ``budget``; the form offers the known ones)."""
    kinds = sorted({str(kind).strip() for kind in muted_kinds or () if str(kind).strip()})
    if any(len(kind) > 32 for kind in kinds):
        raise MemberError("invalid_kind", "muted_alert_kinds", "Unknown alert kind.")
    membership.receives_alerts = bool(receives_alerts)
    membership.muted_alert_kinds = kinds
    membership.save(update_fields=["receives_alerts", "muted_alert_kinds"])
    return membership


def members_list(*, account: Account) -> list[Membership]:
    """The account's members, owners first, then billing, then viewers, by name."""
    order = {Role.OWNER: 0, Role.BILLING: 1, Role.MEMBER: 2}
    members = list(account.memberships.select_related("user"))
    return sorted(members, key=lambda m: (order.get(m.role, 9), m.user.get_username().lower()))
