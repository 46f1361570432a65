from django.urls import path

from ops_console import views

urlpatterns = [
    path("health/", views.health, name="health"),
]
