from django.urls import path

from ops_console import views

urlpatterns = [
    path("health/", views.health, name="health"),
    path("health/ready", views.ready, name="health-ready"),
    path("metrics", views.metrics, name="metrics"),
]
