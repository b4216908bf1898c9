"""The URLconf of the API alone: what api.middleware.ApiMiddleware resolves /v1 and /client
against, without walking the dashboard's patterns. The dashboard's root URLconf includes it
too, so that reverse("api:…") works anywhere."""

from django.urls import include, path

urlpatterns = [
    path("v1/", include(("reminix_dashboard.api_urls", "api"))),
    path("client/", include(("reminix_dashboard.client_api_urls", "client_api"))),
]
