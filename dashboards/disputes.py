"""The dispute form and what the drill-down's line and hour pages show of disputes."""

from datetime import date, timedelta
from typing import TYPE_CHECKING

from django import forms
from django.http import HttpRequest

from billing.selectors import user_manages_billing
from usage.selectors.disputes import disputes_for_line

if TYPE_CHECKING:
    from dashboards.drilldown_views import LineContext


class DisputeForm(forms.Form):
    day = forms.DateField(required=False, input_formats=["%Y-%m-%d"], help_text="YYYY-MM-DD")
    hour = forms.IntegerField(required=False, min_value=0, max_value=23, help_text="0-23 UTC")
    message = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=4000)

    def __init__(self, *args, line: "LineContext | None" = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.line = line

    def clean_message(self) -> str:
        message = self.cleaned_data["message"].strip()
        if not message:
            raise forms.ValidationError("Tell us what looks wrong.")
        return message

    def clean(self):
        data = super().clean()
        day, hour = data.get("day"), data.get("hour")
        if hour is not None and day is None:
            self.add_error("day", "An hour needs its day.")
        line = self.line
        if day is not None and line is not None and not line.start.date() <= day < _end(line):
            self.add_error("day", "That day is outside the line's period.")
        return data


def _end(line: "LineContext") -> date:
    """The first day after the line's period (its end is exclusive)."""
    return (line.end - timedelta(microseconds=1)).date() + timedelta(days=1)


def may_dispute(request: HttpRequest, ctx: "LineContext") -> bool:
    return user_manages_billing(account=ctx.account, user=request.user)


def dispute_context(request: HttpRequest, ctx: "LineContext", form=None, initial=None) -> dict:
    """What the line and hour pages show of disputes: the list and (for owners and
    billing members) the form."""
    allowed = may_dispute(request, ctx)
    return {
        "disputes": disputes_for_line(
            account=ctx.account, invoice_id=ctx.invoice.id, line_id=ctx.line.id
        ),
        "dispute_form": (form or DisputeForm(initial=initial, line=ctx)) if allowed else None,
    }
