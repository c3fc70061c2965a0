"""Reporting through Stripe's v2 meter event stream (issue 19): a report records which
endpoint sent it (``UsageReport.transport``: ``v1`` or ``v2_stream``, empty until sent)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("usage", "0017_sweep_watermark")]

    operations = [
        migrations.AddField(
            model_name="usagereport",
            name="transport",
            field=models.CharField(
                blank=True,
                choices=[("v1", "v1 meter events"), ("v2_stream", "v2 meter event stream")],
                help_text="The endpoint it was first sent through (empty until then; every "
                "resend uses the same one): v1 one event a call, or the v2 stream, up to 100 a "
                "call",
                max_length=10,
            ),
        ),
    ]
