"""The Members page: who is in the account and their roles, inviting by e-mail, pending
invitations (withdraw, send again), removing members and changing roles, and each
member's own choice of alert e-mails; and the invitation link's page
(``/dashboard/invitations/<token>/``: sign up, or accept as the signed-in user).

Who may do what (``billing.services.members`` enforces it; the page shows only what the
user may do):

- owners: invite any role, withdraw any invitation, remove anyone, change roles;
- billing members: invite viewers, withdraw viewers' invitations, remove viewers;
- viewers: see the list;
- everyone: choose their own alert e-mails, leave the account (not the last owner).

Staff viewing as the customer (``?account=``) see the page with ``billing.view_account``
and change it with ``billing.add_invitation`` (invite, send again),
``billing.change_invitation`` (withdraw), ``billing.delete_membership`` (remove) and
``billing.change_membership`` (roles); they have no alert choices of their own there.

Plain forms: a change redirects back to the page with a message; an error is a 400 with
the page and the error next to its field (``data-code``); not allowed is a 403; another
account's member or invitation is a 404.
"""

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from billing.models import Account, Membership
from billing.models_members import Invitation
from billing.services import members as service
from billing.services.members import MemberError
from dashboards.access import (
    account_for_request,
    account_url,
    may_see_amounts,  # noqa: F401 (dashboards.views imports it here)
    render_not_found,
    viewing_as,
)
from usage.models import AlertRule
from usage.models_budgets import BudgetKind

Role = Membership.Role
INVITE_PERMISSION = "billing.add_invitation"
REVOKE_PERMISSION = "billing.change_invitation"
REMOVE_PERMISSION = "billing.delete_membership"
ROLE_PERMISSION = "billing.change_membership"
# What a member can mute: each alert rule kind, and budget warnings.
BUDGET_KIND = "budget"
ALERT_KIND_CHOICES = [*AlertRule.Kind.choices, (BUDGET_KIND, "Budget warnings")]


def alerts_shown(deliveries, *, show_amounts: bool) -> list:
    """Sent alerts a page may list: without amounts, only usage rules' and unit budgets'
    (a spend or credit alert's summary states money)."""
    if show_amounts:
        return list(deliveries)
    return [
        d
        for d in deliveries.select_related("rule", "budget")
        if (d.rule is not None and d.rule.kind in AlertRule.USAGE_KINDS)
        or (d.budget is not None and d.budget.kind == BudgetKind.UNITS)
    ]


# Forms ---------------------------------------------------------------------------------


class InviteForm(forms.Form):
    email = forms.EmailField(max_length=254)
    role = forms.ChoiceField(choices=Role.choices)

    def __init__(self, *args, roles=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["role"].choices = [(r, Role(r).label) for r in roles]
        if Role.MEMBER in roles:
            self.fields["role"].initial = Role.MEMBER


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class AlertChoicesForm(forms.Form):
    receives_alerts = forms.BooleanField(required=False, label="E-mail me alerts")
    muted_alert_kinds = forms.MultipleChoiceField(
        choices=ALERT_KIND_CHOICES,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Except",
    )


class SignupForm(forms.Form):
    username = forms.CharField(max_length=150)
    password1 = forms.CharField(label="Password", widget=forms.PasswordInput, strip=False)
    password2 = forms.CharField(label="Password again", widget=forms.PasswordInput, strip=False)

    def clean(self):
        data = super().clean()
        if data.get("password1") and data.get("password1") != data.get("password2"):
            self.add_error("password2", forms.ValidationError("The passwords differ.", "mismatch"))
        return data


def _add_error(form: forms.Form, exc: MemberError) -> None:
    field = exc.field if exc.field in form.fields else None
    form.add_error(field, forms.ValidationError(exc.message, code=exc.code))


# The page ------------------------------------------------------------------------------


def _account(request: HttpRequest, *staff_permissions: str) -> Account:
    account = account_for_request(request, staff_permissions=staff_permissions)
    if account is None:
        raise Http404("no account")
    return account


def _staff(request: HttpRequest) -> bool:
    return viewing_as(request) is not None


def _invitable_roles(request: HttpRequest, account: Account) -> tuple[str, ...]:
    if _staff(request):
        return tuple(Role.values) if request.user.has_perm(INVITE_PERMISSION) else ()
    return service.roles_may_invite(role=service.role_of(account=account, user=request.user))


def _context(request, account, *, invite_form=None, alerts_form=None, role_errors=None) -> dict:
    staff = _staff(request)
    own = None if staff else account.memberships.filter(user=request.user).first()
    my_role = own.role if own else None
    managed = service.roles_may_invite(role=my_role)
    invitable = _invitable_roles(request, account)
    perms = request.user.has_perm
    rows = []
    for membership in service.members_list(account=account):
        is_me = own is not None and membership.pk == own.pk
        rows.append(
            {
                "membership": membership,
                "is_me": is_me,
                "may_remove": (perms(REMOVE_PERMISSION) if staff else membership.role in managed)
                or is_me,
                "may_change_role": perms(ROLE_PERMISSION) if staff else my_role == Role.OWNER,
                "role_error": (role_errors or {}).get(membership.pk),
            }
        )
    pending = service.invitations_pending(account=account)
    return {
        "account": account,
        "my_role": my_role,
        "members": rows,
        "role_choices": Role.choices,
        "invitations": [
            {
                "invitation": i,
                "expired": not service.invitation_is_open(i),
                "may_manage": (perms(REVOKE_PERMISSION) if staff else i.role in managed),
            }
            for i in pending
        ],
        "invite_form": (invite_form or InviteForm(roles=invitable)) if invitable else None,
        "alerts_form": (
            alerts_form
            or AlertChoicesForm(
                initial={
                    "receives_alerts": own.receives_alerts,
                    "muted_alert_kinds": own.muted_alert_kinds,
                }
            )
        )
        if own is not None
        else None,
        "ttl_hours": settings.BILLING_INVITATION_TTL_HOURS,
    }


def _page(request, account, *, status=200, **forms_) -> HttpResponse:
    return render(
        request, "dashboards/members.html", _context(request, account, **forms_), status=status
    )


def _back(request: HttpRequest) -> HttpResponse:
    return redirect(account_url(request, "dashboards:members"))


def _refused(exc: MemberError):
    """A service refusal that is not a form error: 404 for another account's object."""
    if exc.code == "not_found":
        raise Http404(exc.message)
    raise PermissionDenied(exc.message)


@require_GET
@login_required
@render_not_found
def members(request: HttpRequest) -> HttpResponse:
    return _page(request, _account(request))


@require_POST
@login_required
@render_not_found
def member_invite(request: HttpRequest) -> HttpResponse:
    account = _account(request, INVITE_PERMISSION)
    roles = _invitable_roles(request, account)
    if not roles:
        raise PermissionDenied("Only owners and billing members may invite.")
    form = InviteForm(request.POST, roles=roles)
    if form.is_valid():
        try:
            invitation, raw = service.invitation_create(
                account=account,
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
                invited_by=request.user,
                staff=_staff(request),
            )
        except MemberError as exc:
            _add_error(form, exc)
    if form.errors:
        return _page(request, account, status=400, invite_form=form)
    _sent_message(request, invitation, raw)
    return _back(request)


def _sent_message(request: HttpRequest, invitation: Invitation, raw: str) -> None:
    if service.invitation_email_send(invitation=invitation, raw_token=raw):
        messages.success(request, f"Invitation sent to {invitation.email}.")
    else:
        messages.error(
            request,
            f"The invitation to {invitation.email} could not be e-mailed; try "
            "“Send again” in a moment.",
        )


@require_POST
@login_required
@render_not_found
def invitation_resend(request: HttpRequest, invitation_id: int) -> HttpResponse:
    """A fresh link (the old one stops working) for a pending invitation."""
    account = _account(request, INVITE_PERMISSION)
    old = Invitation.objects.filter(
        account=account, pk=invitation_id, accepted_at__isnull=True, revoked_at__isnull=True
    ).first()
    if old is None:
        raise Http404("No such open invitation.")
    try:
        invitation, raw = service.invitation_create(
            account=account,
            email=old.email,
            role=old.role,
            invited_by=request.user,
            staff=_staff(request),
        )
    except MemberError as exc:
        if exc.code == "already_member":
            messages.error(request, exc.message)
            return _back(request)
        _refused(exc)
    _sent_message(request, invitation, raw)
    return _back(request)


@require_POST
@login_required
@render_not_found
def invitation_revoke(request: HttpRequest, invitation_id: int) -> HttpResponse:
    account = _account(request, REVOKE_PERMISSION)
    try:
        invitation = service.invitation_revoke(
            account=account, invitation_id=invitation_id, by=request.user, staff=_staff(request)
        )
    except MemberError as exc:
        _refused(exc)
    messages.success(request, f"Invitation to {invitation.email} withdrawn.")
    return _back(request)


@require_POST
@login_required
@render_not_found
def member_remove(request: HttpRequest, membership_id: int) -> HttpResponse:
    account = _account(request, REMOVE_PERMISSION)
    leaving = (
        not _staff(request)
        and account.memberships.filter(pk=membership_id, user=request.user).exists()
    )
    try:
        service.member_remove(
            account=account, membership_id=membership_id, by=request.user, staff=_staff(request)
        )
    except MemberError as exc:
        if exc.code == "last_owner":
            messages.error(request, exc.message)
            return _page(request, account, status=400)
        _refused(exc)
    if leaving:
        messages.success(request, f"You left {account.name}.")
        return redirect("dashboards:home")
    messages.success(request, "Member removed.")
    return _back(request)


@require_POST
@login_required
@render_not_found
def member_set_role(request: HttpRequest, membership_id: int) -> HttpResponse:
    account = _account(request, ROLE_PERMISSION)
    if not _staff(request) and service.role_of(account=account, user=request.user) != Role.OWNER:
        raise PermissionDenied("Only owners may change roles.")
    form = RoleForm(request.POST)
    if not form.is_valid():
        error = ("invalid_role", "Choose owner, billing or viewer.")
        return _page(request, account, status=400, role_errors={membership_id: error})
    try:
        service.member_set_role(
            account=account,
            membership_id=membership_id,
            role=form.cleaned_data["role"],
            by=request.user,
            staff=_staff(request),
        )
    except MemberError as exc:
        if exc.code in ("last_owner", "invalid_role"):
            errors = {membership_id: (exc.code, exc.message)}
            return _page(request, account, status=400, role_errors=errors)
        _refused(exc)
    messages.success(request, "Role changed.")
    return _back(request)


@require_POST
@login_required
@render_not_found
def member_alerts(request: HttpRequest) -> HttpResponse:
    """The signed-in member's own alert e-mails."""
    account = _account(request)
    own = None if _staff(request) else account.memberships.filter(user=request.user).first()
    if own is None:
        raise PermissionDenied("Only the account's members choose their own alert e-mails.")
    form = AlertChoicesForm(request.POST)
    if not form.is_valid():
        return _page(request, account, status=400, alerts_form=form)
    service.member_set_alerts(
        membership=own,
        receives_alerts=form.cleaned_data["receives_alerts"],
        muted_kinds=form.cleaned_data["muted_alert_kinds"],
    )
    messages.success(request, "Your alert e-mails are saved.")
    return _back(request)


# The invitation link -------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    """The link from the e-mail. Signed in: accept as that user. Otherwise: create a
    sign-in (the invitation's e-mail, a username and a password) or sign in first.
    An unknown link is a 404; a used, withdrawn or expired one a 410 saying which."""
    try:
        invitation = service.invitation_for_token(raw_token=token)
    except MemberError as exc:
        return _accept_page(request, None, error=exc, status=404)
    try:
        service.invitation_check_open(invitation)
    except MemberError as exc:
        return _accept_page(request, invitation, error=exc, status=410)
    form = None
    if request.method == "POST":
        try:
            if request.user.is_authenticated:
                service.invitation_accept(raw_token=token, user=request.user)
            else:
                form = SignupForm(request.POST)
                if not form.is_valid():
                    return _accept_page(request, invitation, form=form, status=400)
                user = service.invitation_accept_signup(
                    raw_token=token,
                    username=form.cleaned_data["username"],
                    password=form.cleaned_data["password1"],
                )
                login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        except MemberError as exc:
            if form is not None and exc.field in ("username", "password"):
                form.add_error(
                    "password1" if exc.field == "password" else "username",
                    forms.ValidationError(exc.message, code=exc.code),
                )
                return _accept_page(request, invitation, form=form, status=400)
            status = 409 if exc.code in ("other_account", "already_member") else 410
            return _accept_page(request, invitation, error=exc, status=status)
        messages.success(request, f"Welcome to {invitation.account.name}.")
        return redirect("dashboards:home")
    if not request.user.is_authenticated:
        form = SignupForm(initial={"username": invitation.email[:150]})
    return _accept_page(request, invitation, form=form)


def _accept_page(request, invitation, *, form=None, error=None, status=200) -> HttpResponse:
    login_url = f"{reverse('login')}?next={request.path}"
    context = {
        "invitation": invitation,
        "form": form,
        "error": error,
        "login_url": login_url,
    }
    return render(request, "dashboards/invitation_accept.html", context, status=status)
