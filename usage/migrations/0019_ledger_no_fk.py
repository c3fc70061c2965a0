"""The ledger keeps its account and meter references without database foreign keys
(issue 19, ingestion).

Every event inserted into ``usage_usageevent`` fired two RI triggers on PostgreSQL, each
a ``SELECT 1 FROM billing_account|billing_meter ... FOR KEY SHARE``: two extra queries
and row locks per event, a large share of the database's CPU per ingested batch.
Ingestion stores only account and meter ids it resolved a moment earlier, in the same
request, and accounts and meters are never deleted while they have events: Django's
``on_delete=PROTECT`` still refuses that (``ProtectedError``), in Python, as before.

On PostgreSQL this drops the two constraints on the partitioned table (its partitions'
copies go with them): a catalog change, no scan or rewrite of the ledger. SQLite
rebuilds its one table without them. Reversible (adding them back validates every row).
The report foreign key stays (it is only written by the reporting pass).
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("usage", "0018_meter_event_stream")]

    operations = [
        migrations.AlterField(
            model_name="usageevent",
            name="account",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="usage_events",
                to="billing.account",
            ),
        ),
        migrations.AlterField(
            model_name="usageevent",
            name="meter",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="usage_events",
                to="billing.meter",
            ),
        ),
    ]
