"""Period summaries: the one engine behind the dashboard, the alert evaluation of one
account and the alert sweep over many.

:func:`period_summaries_for_accounts` summarizes a chunk of accounts with a constant
number of queries: subscription states in bulk (unless the caller has them), each
account's usage over its exact period in one :func:`rollup_values` call, and, only when
a projection is first read, the projection inputs of the whole chunk in two more
(:class:`~usage.selectors.projection_inputs.ProjectionInputs`). The single-account
:func:`period_summary` is this engine called with one account. Callers pass chunks small
enough for SQLite's expression depth (the per-account range conditions are OR-ed).
"""

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from functools import partial

from django.utils import timezone

from billing.mirror.subscriptions import SubscriptionState, subscription_states_for_accounts
from billing.models import Account
from usage.selectors.projection_inputs import ProjectionInputs
from usage.selectors.rollups import Bucket, rollup_values
from usage.selectors.summary_lines import PeriodSummary, base_fee_of, meter_line


def period_summaries_for_accounts(
    *,
    accounts: Sequence[Account],
    now: datetime | None = None,
    offset: int = 0,
    states: Mapping[int, SubscriptionState] | None = None,
    include_closed: bool = False,
    usage: Mapping[tuple[int, int], list[Bucket]] | None = None,
    projected: Iterable[int] | None = None,
) -> dict[int, PeriodSummary]:
    """Summaries of the accounts' periods (``offset`` 0: the current one, -1 the one
    before, ...), keyed by account id. Accounts without a live subscription or without
    a period at ``offset`` are left out, and so are periods that have ended unless
    ``include_closed``. ``usage``: the ``rollup_values(group="range")`` of these very
    periods and meters when the caller read it already (the alert sweep does).
    ``projected``: the accounts whose projections the caller expects to read, read
    together on first use; another account's are read on their own if asked for
    (``ProjectionInputs``). None: every account's together."""
    now = now or timezone.now()
    by_id = {a.pk: a for a in accounts}
    if states is None:
        states = subscription_states_for_accounts(account_ids=list(by_id))
    periods = {
        account_id: period
        for account_id in by_id
        if account_id in states and (period := states[account_id].period_or_none(offset))
    }
    if not include_closed:
        periods = {a: (start, end) for a, (start, end) in periods.items() if end > now}
    meters = {i.meter.pk: i.meter for a in periods for i in states[a].metered_items}
    if usage is None:
        usage = rollup_values(ranges=periods, meters=meters.values(), group="range")
    projections = ProjectionInputs(periods=periods, meters=meters, now=now, together=projected)
    summaries = {}
    base_fees: dict[tuple, int] = {}  # per (price, quantity) of the licensed items: per plan
    for account_id, (start, end) in periods.items():
        state = states[account_id]
        lines = []
        for item in state.metered_items:
            buckets = usage.get((account_id, item.meter.pk))
            projector = partial(projections.projection, account_id=account_id, meter=item.meter)
            lines.append(
                meter_line(item=item, usage=buckets[0].value if buckets else 0, projector=projector)
            )
        summaries[account_id] = PeriodSummary(
            account=by_id[account_id],
            state=state,
            period_start=start,
            period_end=end,
            closed=end <= now,
            now=now,
            lines=tuple(lines),
            base_fee=_base_fee(state, base_fees),
            currency=state.currency,
            projections=projections,
        )
    return summaries


def _base_fee(state: SubscriptionState, known: dict[tuple, int]) -> int:
    """``base_fee_of(state)``, computed once per set of licensed prices and quantities
    (accounts on one plan share it)."""
    key = tuple((item.price_id, item.quantity) for item in state.licensed_items)
    fee = known.get(key)
    if fee is None:
        fee = known[key] = base_fee_of(state)
    return fee


def summaries_read_projections(
    *, summaries: Mapping[int, PeriodSummary], account_ids: Iterable[int]
) -> None:
    """Read the projection inputs of these accounts' summaries now, together (two
    queries per chunk of summaries), instead of each on its own when first read: the
    alert sweep calls it with the accounts whose alert e-mails are about to be rendered
    (they show each line's projection)."""
    wanted = [a for a in account_ids if a in summaries]
    by_inputs: dict[int, tuple[ProjectionInputs, list[int]]] = {}
    for account_id in wanted:
        inputs = summaries[account_id].projections
        if inputs is not None:
            by_inputs.setdefault(id(inputs), (inputs, []))[1].append(account_id)
    for inputs, ids in by_inputs.values():
        inputs.read_together(ids)


def period_summary(
    *, account: Account, state: SubscriptionState, offset: int = 0, now: datetime | None = None
) -> PeriodSummary:
    """One account's summary of its current (``offset`` 0) or an earlier period, open or
    closed: :func:`period_summaries_for_accounts` of that one account. Raises
    ``PeriodNotFound`` when the subscription has no period at ``offset``."""
    summaries = period_summaries_for_accounts(
        accounts=[account], now=now, offset=offset, states={account.pk: state}, include_closed=True
    )
    if account.pk not in summaries:
        state.period(offset)  # raises PeriodNotFound
    return summaries[account.pk]
