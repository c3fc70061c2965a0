"""``GET /v1/account``: the (single) account the emulator stands for."""

from __future__ import annotations

from ..errors import no_such
from ..routing import Request, route


def account(req: Request) -> dict:
    store = req.store
    requirements = {
        "alternatives": [],
        "current_deadline": None,
        "currently_due": [],
        "disabled_reason": None,
        "errors": [],
        "eventually_due": [],
        "past_due": [],
        "pending_verification": [],
    }
    address = {k: None for k in ("city", "country", "line1", "line2", "postal_code", "state")}
    return {
        "id": store.account_id,
        "object": "account",
        "business_profile": {
            "annual_revenue": None,
            "estimated_worker_count": None,
            "mcc": None,
            "name": "Meterdesk (emulated)",
            "product_description": None,
            "support_address": address,
            "support_email": None,
            "support_phone": None,
            "support_url": None,
            "url": None,
            "minority_owned_business_designation": None,
        },
        "business_type": "company",
        "capabilities": {"card_payments": "active", "transfers": "active"},
        "charges_enabled": True,
        "controller": {"type": "account"},
        "country": "US",
        "created": 1700000000,
        "default_currency": "usd",
        "details_submitted": True,
        "email": "billing@meterdesk.test",
        "external_accounts": {
            "object": "list",
            "data": [],
            "has_more": False,
            "url": f"/v1/accounts/{store.account_id}/external_accounts",
        },
        "future_requirements": dict(requirements),
        "livemode": False,
        "metadata": {},
        "payouts_enabled": True,
        "requirements": dict(requirements),
        "settings": {
            "bacs_debit_payments": {"display_name": None, "service_user_number": None},
            "branding": {
                "icon": None,
                "logo": None,
                "primary_color": None,
                "secondary_color": None,
            },
            "card_issuing": {"tos_acceptance": {"date": None, "ip": None}},
            "card_payments": {
                "decline_on": {"avs_failure": False, "cvc_failure": False},
                "statement_descriptor_prefix": None,
                "statement_descriptor_prefix_kana": None,
                "statement_descriptor_prefix_kanji": None,
            },
            "dashboard": {"display_name": "Meterdesk (emulated)", "timezone": "Etc/UTC"},
            "invoices": {"default_account_tax_ids": None, "hosted_payment_method_save": None},
            "payments": {
                "statement_descriptor": "METERDESK",
                "statement_descriptor_kana": None,
                "statement_descriptor_kanji": None,
                "statement_descriptor_prefix_kana": None,
                "statement_descriptor_prefix_kanji": None,
            },
            "payouts": {
                "debit_negative_balances": True,
                "schedule": {"delay_days": 2, "interval": "daily"},
                "statement_descriptor": None,
            },
            "sepa_debit_payments": {},
        },
        "tos_acceptance": {"date": 1700000000, "ip": None, "user_agent": None},
        "type": "standard",
    }


@route("GET", "/v1/account")
def retrieve(req: Request):
    return account(req)


@route("GET", "/v1/accounts/{id}")
def retrieve_by_id(req: Request):
    if req.args["id"] != req.store.account_id:
        raise no_such("account", req.args["id"])
    return account(req)


@route("GET", "/v1/accounts")
def list_connected(req: Request):
    """No connected accounts: the platform account is ``GET /v1/account``."""
    return {"object": "list", "data": [], "has_more": False, "url": "/v1/accounts"}
