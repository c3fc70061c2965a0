"""The one read model over the dj-stripe mirror.

Nothing outside ``billing`` imports ``djstripe`` or reads ``stripe_data``: it calls
these modules, which return Meterdesk's own typed values (frozen dataclasses),
``Account`` rows, or plain ids.

- ``customers``: Stripe customer <-> account.
- ``periods``: billing periods stepped from the billing-cycle anchor as Stripe does.
- ``subscriptions``: an account's live subscription with its items, prices, meters.
- ``prices``: price -> pricing-engine spec, price -> meter.
- ``invoices``: invoices with typed lines (base fee / metered / proration).
- ``events``: what a mirrored Stripe event is about.
"""
