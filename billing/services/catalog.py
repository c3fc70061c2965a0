"""Apply a catalog file to Stripe and mirror it locally (meters, products, prices), and
make sure the Customer Portal has a configuration (:mod:`billing.services.portal_configuration`).

Idempotent: prices are found by ``lookup_key``; an unchanged price is left alone, a
changed one becomes a new Stripe price (``transfer_lookup_key``) and the old one is
archived, because Stripe prices' amounts cannot be edited.

A price sold in several currencies is one Stripe price per currency (lookup key
``<key>`` in the catalog's currency, ``<key>_<currency>`` in the others), each mirrored
as a :class:`~billing.models.PlanPrice` row with its ``currency``. A price the file no
longer declares (a currency taken off a plan, say) is archived in Stripe and its row
removed, so a plan is only offered in the currencies the file prices it in.
"""

from dataclasses import dataclass, field

from django.db import transaction
from djstripe.models import Price, Product

from billing.catalog.spec import Catalog, PlanSpec, PriceSpecParams
from billing.models import Meter, Plan, PlanPrice
from billing.services.meters import _stripe_meters_by_event_name, meter_push_to_stripe
from billing.services.portal_configuration import portal_configuration_ensure
from billing.stripe_api import api_key, stripe_client

SPEC_HASH_KEY = "meterdesk_spec"
PLAN_KEY = "meterdesk_plan"


@dataclass
class ApplyReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    archived: list[str] = field(default_factory=list)
    portal: str = ""  # what was done about the Customer Portal's configuration

    def lines(self) -> list[str]:
        out = []
        for verb in ("created", "updated", "archived", "unchanged"):
            out.extend(f"{verb:9} {what}" for what in getattr(self, verb))
        return out + ([self.portal] if self.portal else [])


def _apply_meters(*, catalog: Catalog, client, report: ApplyReport) -> dict[str, Meter]:
    remote_by_name = _stripe_meters_by_event_name(client)
    meters = {}
    for spec in catalog.meters:
        meter, created = Meter.objects.get_or_create(
            event_name=spec.event_name,
            defaults={
                "display_name": spec.display_name,
                "unit_label": spec.unit_label,
                "aggregation": spec.aggregation,
            },
        )
        if not created and meter.aggregation != spec.aggregation:
            raise ValueError(
                f"meters.{spec.event_name}.aggregation: is {meter.aggregation!r} already; "
                "a meter's aggregation cannot change, add a meter with a new event name"
            )
        changed = (meter.display_name, meter.unit_label) != (spec.display_name, spec.unit_label)
        meter.display_name, meter.unit_label = spec.display_name, spec.unit_label
        was_remote = meter.event_name in remote_by_name
        meter_push_to_stripe(meter=meter, client=client, remote_by_name=remote_by_name)
        what = f"meter {spec.event_name} ({meter.stripe_id})"
        if created or not was_remote:
            report.created.append(what)
        elif changed:
            report.updated.append(what)
        else:
            report.unchanged.append(what)
        meters[spec.event_name] = meter
    return meters


def _apply_product(*, plan_spec: PlanSpec, client, products: dict, report: ApplyReport):
    remote = products.get(plan_spec.key)
    fields = {"name": plan_spec.name, "description": plan_spec.description or None}
    if remote is None:
        remote = client.v1.products.create(
            {**{k: v for k, v in fields.items() if v}, "metadata": {PLAN_KEY: plan_spec.key}},
            {"idempotency_key": f"meterdesk-product-{plan_spec.key}"},
        )
        report.created.append(f"product {plan_spec.key} ({remote.id})")
    elif (remote.name, remote.description or None) != (fields["name"], fields["description"]):
        remote = client.v1.products.update(remote.id, {k: v or "" for k, v in fields.items()})
        report.updated.append(f"product {plan_spec.key} ({remote.id})")
    else:
        report.unchanged.append(f"product {plan_spec.key} ({remote.id})")
    Product.sync_from_stripe_data(remote, api_key=api_key())
    return remote


def _apply_price(*, spec: PriceSpecParams, product_id: str, meters, client, report):
    params = {**spec.params, "product": product_id}
    if spec.meter:
        params["recurring"] = {**params["recurring"], "meter": meters[spec.meter].stripe_id}
    params["metadata"] = {SPEC_HASH_KEY: spec.spec_hash}
    existing = client.v1.prices.list(
        {"lookup_keys": [spec.lookup_key], "active": True, "expand": ["data.tiers"]}
    ).data
    current = existing[0] if existing else None
    same = (
        current is not None
        and (current.metadata or {}).get(SPEC_HASH_KEY) == spec.spec_hash
        and current.product == product_id
    )
    if same:
        report.unchanged.append(f"price {spec.lookup_key} ({current.id})")
        price = current
    else:
        if current is not None:
            params["transfer_lookup_key"] = True
        price = client.v1.prices.create(
            params, {"idempotency_key": f"meterdesk-price-{spec.lookup_key}-{spec.spec_hash}"}
        )
        if current is not None:
            old = client.v1.prices.update(current.id, {"active": False})
            Price.sync_from_stripe_data(old, api_key=api_key())
            report.archived.append(f"price {spec.lookup_key} ({current.id})")
            report.updated.append(f"price {spec.lookup_key} ({price.id})")
        else:
            report.created.append(f"price {spec.lookup_key} ({price.id})")
    if getattr(price, "tiers", None) is None and price.billing_scheme == "tiered":
        price = client.v1.prices.retrieve(price.id, {"expand": ["tiers"]})
    Price.sync_from_stripe_data(price, api_key=api_key())
    return price


def _retire_undeclared_prices(*, plan: Plan, plan_spec: PlanSpec, client, report) -> None:
    declared = {spec.lookup_key for spec in plan_spec.prices}
    for stale in plan.prices.exclude(lookup_key__in=declared):
        if stale.stripe_price_id:
            old = client.v1.prices.update(stale.stripe_price_id, {"active": False})
            Price.sync_from_stripe_data(old, api_key=api_key())
        report.archived.append(f"price {stale.lookup_key} ({stale.stripe_price_id or '-'})")
        stale.delete()


def catalog_apply(*, catalog: Catalog, client=None) -> ApplyReport:
    """Make Stripe and the local mirror match the catalog; safe to run any number of times."""
    client = client or stripe_client()
    report = ApplyReport()
    with transaction.atomic():
        meters = _apply_meters(catalog=catalog, client=client, report=report)
        products = {
            (p.metadata or {}).get(PLAN_KEY): p
            for p in client.v1.products.list({"limit": 100}).auto_paging_iter()
            if (p.metadata or {}).get(PLAN_KEY)
        }
        for plan_spec in catalog.plans:
            product = _apply_product(
                plan_spec=plan_spec, client=client, products=products, report=report
            )
            plan, _ = Plan.objects.update_or_create(
                key=plan_spec.key,
                defaults={
                    "name": plan_spec.name,
                    "description": plan_spec.description,
                    "stripe_product_id": product.id,
                    "position": plan_spec.position,
                    "active": True,
                },
            )
            for spec in plan_spec.prices:
                price = _apply_price(
                    spec=spec, product_id=product.id, meters=meters, client=client, report=report
                )
                PlanPrice.objects.update_or_create(
                    lookup_key=spec.lookup_key,
                    defaults={
                        "plan": plan,
                        "nickname": spec.nickname,
                        "meter": meters.get(spec.meter) if spec.meter else None,
                        "currency": spec.currency,
                        "stripe_price_id": price.id,
                        "spec_hash": spec.spec_hash,
                    },
                )
            _retire_undeclared_prices(plan=plan, plan_spec=plan_spec, client=client, report=report)
    portal, created = portal_configuration_ensure(client=client)
    report.portal = f"{'created' if created else 'reused':9} portal configuration {portal}"
    return report
