"""Placeholder, filled by the work on issue 19 (operations added by its owner)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("usage", "0017_sweep_watermark")]

    operations = []
