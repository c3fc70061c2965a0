"""Production settings for the benchmarks, with one difference: static files are served
by name (``StaticFilesStorage``) instead of through the hashed manifest.

``config.settings.production`` uses ``ManifestStaticFilesStorage``, whose
``collectstatic`` post-processing fails on the vendored Chart.js (it references a
``.map`` file that is not vendored), so pages cannot render without a manifest. The
benchmarks measure the application, not static file hashing; everything else is
production's, read from the environment as in production.
"""

from config.settings.production import *  # noqa: F403
from config.settings.production import STORAGES

STORAGES = {
    **STORAGES,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
