"""Every URL: the dashboard's pages, then the token-authenticated API."""

from django.urls import include, path

from accounts import views as account_views

urlpatterns = [
    path("", account_views.home, name="home"),
    path("", include("accounts.urls")),
    path("", include("apikeys.urls")),
    path("", include("usage.urls")),
    path("", include("alerts.urls")),
    path("v1/", include(("reminix_dashboard.api_urls", "api"))),
    path("client/", include(("reminix_dashboard.client_api_urls", "client_api"))),
]
