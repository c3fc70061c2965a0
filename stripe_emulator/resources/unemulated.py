"""Collections the emulator does not model, listed as empty so that whole-account syncs
(dj-stripe's ``djstripe_sync_models`` with no model names) do not fail on them.

Retrieving or creating any of these is still a 404 ``Unrecognized request URL``."""

from __future__ import annotations

from ..lists import list_object
from ..routing import Request, route

EMPTY_COLLECTIONS = (
    "/v1/application_fees",
    "/v1/balance_transactions",
    "/v1/charges",
    "/v1/checkout/sessions",
    "/v1/country_specs",
    "/v1/coupons",
    "/v1/disputes",
    "/v1/entitlements/active_entitlements",
    "/v1/entitlements/features",
    "/v1/file_links",
    "/v1/files",
    "/v1/identity/verification_reports",
    "/v1/identity/verification_sessions",
    "/v1/issuing/authorizations",
    "/v1/issuing/cardholders",
    "/v1/issuing/cards",
    "/v1/issuing/disputes",
    "/v1/issuing/transactions",
    "/v1/payment_intents",
    "/v1/payouts",
    "/v1/promotion_codes",
    "/v1/radar/early_fraud_warnings",
    "/v1/refunds",
    "/v1/reviews",
    "/v1/setup_intents",
    "/v1/shipping_rates",
    "/v1/subscription_schedules",
    "/v1/tax_codes",
    "/v1/tax_ids",
    "/v1/tax_rates",
    "/v1/transfers",
)


def _empty(req: Request):
    return list_object([], req.path)


for _path in EMPTY_COLLECTIONS:
    route("GET", _path)(_empty)
