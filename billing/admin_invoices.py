"""Admin: dj-stripe's Invoice admin, re-registered for API dahlia.

dj-stripe 2.11 shows an invoice's ``paid`` (list column and change page) from
``stripe_data["paid"]``, a field Stripe removed in 2025-03-31.basil: an invoice is paid
when its ``status`` is ``paid`` (``status_transitions.paid_at`` says when). A model admin
method of the same name is what the admin displays instead of the model's property.
"""

from django.contrib import admin
from djstripe.admin.admin import InvoiceAdmin  # importing it registers dj-stripe's admins
from djstripe.models import Invoice


class DahliaInvoiceAdmin(InvoiceAdmin):
    @admin.display(description="Paid", boolean=True)
    def paid(self, obj: Invoice) -> bool:
        return (obj.stripe_data or {}).get("status") == "paid"


admin.site.unregister(Invoice)
admin.site.register(Invoice, DahliaInvoiceAdmin)
