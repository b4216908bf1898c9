from django.urls import path

from overview import views

app_name = "overview"

urlpatterns = [
    path("projects/<slug:slug>/", views.project_overview, name="project_overview"),
]
