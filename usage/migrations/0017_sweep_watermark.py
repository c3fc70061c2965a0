"""The alert sweep's per-account watermark (issue 19): the digest of the inputs of each
account's last evaluation that found nothing to do (``usage.models_sweep``)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0001_initial"),
        ("usage", "0016_partitioned_ledger"),
    ]

    operations = [
        migrations.CreateModel(
            name="SweepWatermark",
            fields=[
                (
                    "account",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="+",
                        serialize=False,
                        to="billing.account",
                    ),
                ),
                ("inputs", models.CharField(help_text="blake2b digest, hex", max_length=32)),
                ("period_start", models.DateTimeField()),
                ("evaluated_at", models.DateTimeField()),
            ],
        ),
    ]
