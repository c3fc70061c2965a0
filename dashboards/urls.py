from django.urls import path

from dashboards import (
    alerts_views,
    budget_views,
    credits_views,
    dispute_views,
    drilldown_views,
    members_views,
    plan_change_views,
    simulator_views,
    statement,
    views,
)

app_name = "dashboards"

urlpatterns = [
    path("", views.home, name="home"),
    path("chart/<slug:event_name>.json", views.chart, name="chart"),
    path("invoices/", views.invoices, name="invoices"),
    path("usage.csv", views.usage_csv, name="usage_csv"),
    path("statement/", statement.open_statement_view, name="statement_open"),
    path("statement.csv", statement.open_statement_csv, name="statement_open_csv"),
    path(
        "invoices/<str:invoice_id>/statement/",
        statement.invoice_statement_view,
        name="statement",
    ),
    path(
        "invoices/<str:invoice_id>/statement.csv",
        statement.invoice_statement_csv,
        name="statement_csv",
    ),
    path(
        "invoices/<str:invoice_id>/lines/<str:line_id>/",
        drilldown_views.line_days,
        name="drilldown_line",
    ),
    path(
        "invoices/<str:invoice_id>/lines/<str:line_id>/days/<str:day>/",
        drilldown_views.day_hours,
        name="drilldown_day",
    ),
    path(
        "invoices/<str:invoice_id>/lines/<str:line_id>/hours/<str:hour>/",
        drilldown_views.hour_events,
        name="drilldown_hour",
    ),
    path(
        "invoices/<str:invoice_id>/lines/<str:line_id>/disputes/",
        dispute_views.dispute_open,
        name="dispute_open",
    ),
    path("alerts/", alerts_views.alerts, name="alerts"),
    path("alerts/add/", alerts_views.alert_add, name="alert_add"),
    path("alerts/<int:rule_id>/remove/", alerts_views.alert_remove, name="alert_remove"),
    path("alerts/slack/", alerts_views.alert_slack_set, name="alert_slack_set"),
    path("alerts/slack/test/", alerts_views.alert_slack_test, name="alert_slack_test"),
    path("alerts/slack/remove/", alerts_views.alert_slack_remove, name="alert_slack_remove"),
    path("credits/", credits_views.credits, name="credits"),
    path("credits/top-up/", credits_views.credits_top_up, name="credits_top_up"),
    path("credits/auto-top-up/", credits_views.credits_auto_top_up, name="credits_auto_top_up"),
    path("simulator/", simulator_views.simulator, name="simulator"),
    path("budgets/", budget_views.budgets, name="budgets"),
    path("budgets/save/", budget_views.budget_save, name="budget_save"),
    path("budgets/<int:budget_id>/delete/", budget_views.budget_remove, name="budget_delete"),
    path("members/", members_views.members, name="members"),
    path("members/invite/", members_views.member_invite, name="member_invite"),
    path("members/<int:membership_id>/remove/", members_views.member_remove, name="member_remove"),
    path("members/<int:membership_id>/role/", members_views.member_set_role, name="member_role"),
    path("members/alerts/", members_views.member_alerts, name="member_alerts"),
    path(
        "members/invitations/<int:invitation_id>/revoke/",
        members_views.invitation_revoke,
        name="invitation_revoke",
    ),
    path(
        "members/invitations/<int:invitation_id>/resend/",
        members_views.invitation_resend,
        name="invitation_resend",
    ),
    path("invitations/<str:token>/", members_views.invitation_accept, name="invitation_accept"),
    path("plan/", plan_change_views.plan_change, name="plan_change"),
    path("plan/preview/", plan_change_views.plan_change_preview_view, name="plan_change_preview"),
    path("plan/apply/", plan_change_views.plan_change_apply_view, name="plan_change_apply"),
    path("plan/status/", plan_change_views.plan_change_status, name="plan_change_status"),
]
