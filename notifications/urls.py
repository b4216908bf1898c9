from django.urls import path

from notifications import views

app_name = "notifications"

urlpatterns = [
    path("account/notifications/", views.notification_preferences, name="preferences"),
]
