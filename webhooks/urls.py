from django.urls import path

from webhooks import views

app_name = "webhooks"

_ONE = "projects/<slug:slug>/settings/webhooks/<int:endpoint_id>/"

urlpatterns = [
    path("projects/<slug:slug>/settings/webhooks/", views.webhook_list, name="webhook_list"),
    path(
        "projects/<slug:slug>/settings/webhooks/new/",
        views.webhook_create_view,
        name="webhook_create",
    ),
    path(_ONE, views.webhook_detail, name="webhook_detail"),
    path(_ONE + "test/", views.webhook_test_view, name="webhook_test"),
    path(_ONE + "disable/", views.webhook_disable_view, name="webhook_disable"),
    path(_ONE + "roll-secret/", views.webhook_secret_roll_view, name="webhook_secret_roll"),
    path(_ONE + "delete/", views.webhook_delete_view, name="webhook_delete"),
    path(
        _ONE + "deliveries/<int:delivery_id>/retry/",
        views.webhook_retry_view,
        name="webhook_retry",
    ),
]
