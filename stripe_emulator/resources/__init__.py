"""One module per resource family; importing this package registers every route."""

from .. import page_actions, pages  # noqa: F401
from . import (  # noqa: F401
    account,
    billing_portal,
    credit_grants,
    credit_notes,
    customers,
    emulator,
    event_destinations,
    invoice_items,
    invoices,
    meter_events,
    meters,
    payment_methods,
    prices,
    products,
    subscription_items,
    subscription_schedules,
    subscriptions,
    test_clocks,
    unemulated,
    webhook_endpoints,
)
