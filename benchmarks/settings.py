"""Production settings for the benchmarks, with one difference: static files are named
directly (``StaticFilesStorage``) instead of through the hashed manifest, so a run needs
no ``collectstatic`` step (production's ``ManifestStaticFilesStorage`` needs one; a test
runs it). The benchmarks measure the application, not static file hashing; everything
else is production's, read from the environment as in production.
"""

from config.settings.production import *  # noqa: F403
from config.settings.production import STORAGES

STORAGES = {
    **STORAGES,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# Tasks the web processes queue during a run (alert evaluations after ingestion) go to a
# queue of the benchmarks' own, deleted at the end of the run, so that no worker on the
# same Redis picks up work for a database that no longer exists.
CELERY_TASK_DEFAULT_QUEUE = "meterdesk-benchmarks"

# The product's URLs plus the trivial view the request benchmarks use as their same-run
# baseline (benchmarks/urls.py); the product's own URLconf is unchanged.
ROOT_URLCONF = "benchmarks.urls"

# Entitlement state keys named like the benchmarks' other Redis keys, so the run's
# cleanup (keys matching *meterdesk-benchmarks*) removes what this process wrote there
# (the servers under load use a private redis-server of their own).
ENTITLEMENT_KEY_PREFIX = "meterdesk-benchmarks:ent:"
