"""billing.mirror.shapes reads invoice lines in dahlia's shape only (issue 13): basil
moved a line's price, subscription item and proration flag under ``pricing`` and
``parent``; the removed top-level keys are no longer read."""

from billing.mirror.shapes import line_is_proration, line_price_id, line_subscription_item

DAHLIA_LINE = {
    "object": "line_item",
    "parent": {
        "type": "subscription_item_details",
        "invoice_item_details": None,
        "subscription_item_details": {
            "subscription": "sub_1",
            "subscription_item": "si_1",
            "proration": True,
        },
    },
    "pricing": {"type": "price_details", "price_details": {"price": "price_1"}},
}
PRE_BASIL_LINE = {"price": {"id": "price_1"}, "subscription_item": "si_1", "proration": True}


def test_dahlia_line():
    assert line_price_id(DAHLIA_LINE) == "price_1"
    assert line_subscription_item(DAHLIA_LINE) == "si_1"
    assert line_is_proration(DAHLIA_LINE) is True


def test_an_invoice_item_proration_is_a_proration():
    line = {"parent": {"type": "invoice_item_details", "invoice_item_details": {"proration": 1}}}
    assert line_is_proration(line) is True and line_subscription_item(line) == ""


def test_removed_top_level_keys_are_not_read():
    assert line_price_id(PRE_BASIL_LINE) == ""
    assert line_subscription_item(PRE_BASIL_LINE) == ""
    assert line_is_proration(PRE_BASIL_LINE) is False
