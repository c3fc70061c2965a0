"""``{% account_url 'dashboards:invoices' %}``: customer-page URLs that keep the account
staff are viewing as (``?account=<id>``); ``{% account_picker %}``: staff's account select.
"""

from django import template

from dashboards import access

register = template.Library()


@register.simple_tag(takes_context=True)
def account_url(context, name: str, *args, **query) -> str:
    """The URL of ``name`` with ``query`` and, while staff view as a customer, its account."""
    return access.account_url(context.get("request"), name, *args, **query)


@register.inclusion_tag("dashboards/_account_picker.html", takes_context=True)
def account_picker(context) -> dict:
    request = context.get("request")
    user = getattr(request, "user", None)
    current = access.viewing_as(request)
    return {
        "accounts": access.pickable_accounts(user) if user is not None else [],
        "current_pk": current.pk if current else None,
    }


@register.simple_tag(takes_context=True)
def sees_amounts(context) -> bool:
    """``{% sees_amounts as money %}``: whether this user sees money on the customer
    pages (viewers may not: ``BILLING_VIEWERS_SEE_AMOUNTS``), for hiding links to them."""
    request = context.get("request")
    if request is None or access.settings.BILLING_VIEWERS_SEE_AMOUNTS:
        return True
    try:
        account = access.account_for_request(request)
    except access.Http404:
        return True  # the page itself answers this
    return access.may_see_amounts(request, account)
