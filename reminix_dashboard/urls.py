"""Every URL: the token-authenticated API, then the dashboard's pages.

In a running server, API requests never reach this URLconf: api.middleware.ApiMiddleware
answers them from reminix_dashboard/api_root_urls.py first. It is here for reverse().
"""

from django.urls import include, path

from accounts.views import home
from core import well_known

urlpatterns = [
    path("", include("reminix_dashboard.api_root_urls")),
    path("", home.home, name="home"),
    path("robots.txt", well_known.robots_txt, name="robots_txt"),
    path(".well-known/security.txt", well_known.security_txt, name="security_txt"),
    path("", include("accounts.urls")),
    path("", include("apikeys.urls")),
    path("", include("usage.urls")),
    path("", include("alerts.urls")),
    path("", include("notifications.urls")),
    path("", include("overview.urls")),
    path("", include("webhooks.urls")),
    path("", include("api.urls")),
]

handler500 = "core.error_pages.server_error"
