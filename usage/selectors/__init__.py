"""Reads of the usage ledger: periods, ledger totals, rollups, the summary API."""
