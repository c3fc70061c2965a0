"""The emulator as a process: --state survives a restart, real-time period closing, reset."""

from __future__ import annotations

import subprocess
import sys
import time

from stripe_emulator.testing import ROOT, control, running_emulator

from .conftest import make_client


def test_state_file_survives_a_restart(tmp_path):
    state = tmp_path / "state" / "emulator.json"
    with running_emulator("--state", str(state)) as url:
        client = make_client(url)
        customer = client.v1.customers.create({"email": "kept@example.com"})
        price = client.v1.prices.create(
            {
                "product_data": {"name": "Kept"},
                "currency": "usd",
                "unit_amount": 300,
                "recurring": {"interval": "month"},
            }
        )
        sub = client.v1.subscriptions.create(
            {
                "customer": customer.id,
                "items": [{"price": price.id}],
                "default_payment_method": "pm_card_visa",
            }
        )
        assert sub.status == "active"
    assert state.exists()
    with running_emulator("--state", str(state)) as url:
        client = make_client(url)
        assert client.v1.customers.retrieve(customer.id).email == "kept@example.com"
        again = client.v1.subscriptions.retrieve(sub.id, {"expand": ["latest_invoice"]})
        assert again.latest_invoice.total == 300
        control(url, "/_emulator/reset", {})
        assert client.v1.customers.list().data == []


def test_real_time_thread_closes_periods_without_a_test_clock(client, emulator):
    customer = client.v1.customers.create(
        {
            "payment_method": "pm_card_visa",
            "invoice_settings": {"default_payment_method": "pm_card_visa"},
        }
    )
    price = client.v1.prices.create(
        {
            "product_data": {"name": "Daily"},
            "currency": "usd",
            "unit_amount": 100,
            "recurring": {"interval": "day"},
        }
    )
    sub = client.v1.subscriptions.create({"customer": customer.id, "items": [{"price": price.id}]})
    end = sub["items"].data[0].current_period_end
    # Move the emulator's own clock two days and an hour on; the background thread (--tick
    # 0.2 s in these tests) closes both daily periods and, an hour after each, finalizes
    # and charges its renewal draft: 1 + 2 invoices of 100 each, all paid.
    moved = control(emulator, "/_emulator/time/advance", {"seconds": 2 * 86400 + 3600})
    assert moved["now"] >= end + 86400
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        invoices = client.v1.invoices.list({"subscription": sub.id}).data
        if len(invoices) == 3 and all(i.status == "paid" for i in invoices):
            break
        time.sleep(0.05)
    assert [i.total for i in invoices] == [100, 100, 100]
    assert all(i.status == "paid" for i in invoices)


def test_the_emulator_imports_nothing_from_django_or_the_apps():
    # In a fresh interpreter: this test process has Django loaded already.
    code = (
        "import sys, stripe_emulator.__main__, stripe_emulator.testing\n"
        "bad = sorted({m.split('.')[0] for m in sys.modules}"
        " & {'django', 'djstripe', 'stripe', 'config', 'billing', 'usage', 'dashboards'})\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
