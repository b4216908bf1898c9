from django.urls import path

from apikeys import views

app_name = "apikeys"

urlpatterns = [
    path("projects/<slug:slug>/settings/api-keys/", views.api_key_list, name="api_key_list"),
    path("projects/<slug:slug>/usage/", views.project_usage, name="project_usage"),
    path("account/tokens/", views.personal_token_list, name="personal_token_list"),
]
