import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")
application = get_wsgi_application()

# After get_wsgi_application(): settings configured, apps ready.
from usage.entitlement_wsgi import entitlement_fast_path  # noqa: E402

application = entitlement_fast_path(application)
