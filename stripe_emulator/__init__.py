"""A stateful local Stripe API for development, demos and tests.

Run it with ``python -m stripe_emulator --host 127.0.0.1 --port 12111``. It is a
separate process, spoken to over HTTP only, and imports nothing from the Django
apps (nor Django itself): standard library only.
"""

API_VERSION = "2026-05-27.dahlia"
