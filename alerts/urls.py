from django.urls import path

from alerts import views

app_name = "alerts"

urlpatterns = [
    path("projects/<slug:slug>/alerts/", views.flag_list, name="flag_list"),
    path("projects/<slug:slug>/alerts/lookup/", views.token_lookup, name="token_lookup"),
    path("projects/<slug:slug>/alerts/rules/", views.alert_rules, name="alert_rules"),
    path(
        "projects/<slug:slug>/alerts/<int:flag_id>/acknowledge/",
        views.flag_acknowledge_view,
        name="flag_acknowledge",
    ),
    path(
        "projects/<slug:slug>/alerts/key/<int:key_id>/acknowledge/",
        views.flags_acknowledge_for_key_view,
        name="flag_acknowledge_key",
    ),
    path(
        "projects/<slug:slug>/alerts/<int:flag_id>/network-ours/",
        views.flag_network_ours_view,
        name="flag_network_ours",
    ),
]
