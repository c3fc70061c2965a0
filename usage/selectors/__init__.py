"""Reads of the usage ledger.

- ``rollups``: the one rollup reader (``rollup_values``, many accounts, exact edges).
- ``ledger``: the ledger's partial edge hours and too-late units.
- ``series``: chart and CSV series; ``projection_inputs``: what projections read.
- ``summaries`` / ``summary_lines``: period summaries (dashboard, alerts, sweep).
- ``summary_api``: ``GET /api/v1/usage/summary``; ``backtest``: the projections backtest.
- ``periods``: the period usage at a timestamp is reported in; ``alerts``: alert reads.
- ``unreported``: usage not yet in a sent report, per account (guards customer deletion).
- ``id_arrays``: conditions on many ids as one PostgreSQL array parameter (bulk reads).
"""
