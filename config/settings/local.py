"""Local development and the demo: the emulator stands in for Stripe."""

from config.settings.base import *  # noqa: F403
from config.settings.base import env

DEBUG = env.bool("DJANGO_DEBUG", default=True)
STRIPE_API_HOST = env("STRIPE_API_HOST", default="http://127.0.0.1:12111")
# The demo's receivers run on this machine (127.0.0.1); production keeps the guard on.
ALERT_CHANNELS_ALLOW_PRIVATE_HOSTS = env.bool("ALERT_CHANNELS_ALLOW_PRIVATE_HOSTS", default=True)
