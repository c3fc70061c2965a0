from django.contrib import admin

from billing.models import Account, Membership


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    list_display = ["name", "billing_email", "status", "created_at"]
    list_filter = ["status"]
    search_fields = ["name", "billing_email"]
    inlines = [MembershipInline]
