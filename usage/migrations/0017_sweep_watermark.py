"""The alert sweep's per-account watermark (issue 19): the digest of the inputs of each
account's last no-op evaluation, and the rollup writes no evaluation has seen yet,
recorded by triggers on ``usage_usagerollup`` (``usage.models_sweep``,
``usage.sweep_triggers``)."""

import django.db.models.deletion
from django.db import migrations, models


def triggers_install(apps, schema_editor):
    from usage.sweep_triggers import sweep_triggers_install

    sweep_triggers_install(using=schema_editor.connection.alias)


def triggers_drop(apps, schema_editor):
    from usage.sweep_triggers import DROP

    for sql in DROP.get(schema_editor.connection.vendor, []):
        schema_editor.execute(sql)


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
                (
                    "inputs",
                    models.CharField(
                        blank=True,
                        help_text="blake2b digest, hex; empty: evaluate next time",
                        max_length=32,
                    ),
                ),
                ("period_start", models.DateTimeField(blank=True, null=True)),
                ("evaluated_at", models.DateTimeField()),
            ],
        ),
        migrations.CreateModel(
            name="SweepTouch",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("account_id", models.BigIntegerField(db_index=True)),
            ],
        ),
        migrations.RunPython(triggers_install, triggers_drop),
    ]
