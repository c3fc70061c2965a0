"""Admin: dj-stripe's Customer admin, re-registered so that deleting a mirrored customer
is refused while another app still needs it (unreported usage, say).

The check itself is not here: ``billing`` may not import ``usage``. The admin asks the
guards in :mod:`billing.customer_deletion`, which ``usage`` fills when its app is ready
(that module's docstring explains the choice). The refusal goes through
``get_deleted_objects``' "protected" list, which both the delete page and the bulk
"delete selected" action consult before deleting anything: the confirmation page is
replaced by "Cannot delete" with the guards' reasons, and a POST deletes nothing.
``delete_model``/``delete_queryset`` check again, so no other path around the page
deletes a guarded customer either.
"""

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from djstripe.admin.admin import CustomerAdmin  # importing it registers dj-stripe's admins
from djstripe.models import Customer

from billing.customer_deletion import customer_deletion_blockers


class ProtectedCustomerAdmin(CustomerAdmin):
    def get_deleted_objects(self, objs, request):
        deleted, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        blockers = customer_deletion_blockers(customers=list(objs))
        return deleted, model_count, perms_needed, [*blockers, *protected]

    def _refuse_if_guarded(self, customers) -> None:
        blockers = customer_deletion_blockers(customers=customers)
        if blockers:
            raise PermissionDenied("; ".join(blockers))

    def delete_model(self, request, obj):
        self._refuse_if_guarded([obj])
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        self._refuse_if_guarded(list(queryset))
        super().delete_queryset(request, queryset)


admin.site.unregister(Customer)
admin.site.register(Customer, ProtectedCustomerAdmin)
