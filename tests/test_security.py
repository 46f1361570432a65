"""Production settings pass `check --deploy`; responses carry the security
headers; cookies are secure; the admin wants a staff login and CSRF tokens,
and its session is no key to the API."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "a-long-password-123"


def dockerfile_env() -> dict[str, str]:
    """The ENV the production image sets (the Dockerfile's ENV instructions)."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    env = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            env.update(re.findall(r"(\w+)=(\S+)", line))
    return env


def test_check_deploy_is_clean_with_the_production_image_settings(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO", "PYTEST"))}
    env.update(
        dockerfile_env(),
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS="search.example.com",
        STOCKMIND_SERVICES_ENV=str(tmp_path / "none.env"),
        MEDIA_ROOT=str(tmp_path),
    )
    assert env["DJANGO_SECURE_SSL_REDIRECT"] == "1" and int(env["DJANGO_SECURE_HSTS_SECONDS"]) >= 31536000
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.fixture
def production(settings):
    """The security settings of the production image."""
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    settings.SECURE_HSTS_PRELOAD = True
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = True
    return settings


@pytest.fixture
def staff_user(db):
    return get_user_model().objects.create_user("ops", "ops@example.com", PASSWORD, is_staff=True, is_superuser=True)


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/v1/products/", "/admin/login/", "/health/"])
def test_security_headers(production, client, api, path):
    response = (api if path.startswith("/api/") else client).get(path, secure=True)
    assert response.status_code < 500
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"


@pytest.mark.django_db
def test_plain_http_is_redirected_except_health_probes(production, client, api):
    response = api.get("/api/v1/products/")
    assert response.status_code == 301 and response["Location"].startswith("https://")
    assert client.get("/health/").status_code == 200


@pytest.mark.django_db
def test_admin_cookies_are_secure_http_only_and_same_site(production, staff_user):
    client = Client(enforce_csrf_checks=True)
    login = client.get("/admin/login/", secure=True)
    csrf = login.cookies["csrftoken"]
    assert csrf["secure"] and csrf["samesite"] == "Lax"
    response = client.post(
        "/admin/login/?next=/admin/",
        {"username": "ops", "password": PASSWORD, "csrfmiddlewaretoken": csrf.value},
        secure=True,
        HTTP_REFERER="https://testserver/admin/login/",  # HTTPS posts must come from the same origin
    )
    assert response.status_code == 302
    session = response.cookies["sessionid"]
    assert session["secure"] and session["httponly"] and session["samesite"] == "Lax"


@pytest.mark.django_db
def test_admin_needs_a_staff_login(client):
    get_user_model().objects.create_user("shopper", "s@example.com", PASSWORD)  # active, not staff
    assert client.get("/admin/catalog/media/").status_code == 302
    response = client.post("/admin/login/?next=/admin/", {"username": "shopper", "password": PASSWORD})
    assert response.status_code == 200 and b"staff account" in response.content
    assert client.get("/admin/catalog/media/").status_code == 302


@pytest.mark.django_db
def test_admin_posts_without_a_csrf_token_are_refused(staff_user, tenant):
    from catalog.models import Tenant

    client = Client(enforce_csrf_checks=True)
    client.force_login(staff_user)
    response = client.post(f"/admin/catalog/tenant/{tenant.pk}/change/", {"slug": "acme", "name": "Hijacked"})
    assert response.status_code == 403
    assert Tenant.objects.get(pk=tenant.pk).name != "Hijacked"
    login = Client(enforce_csrf_checks=True).post("/admin/login/", {"username": "ops", "password": PASSWORD})
    assert login.status_code == 403


@pytest.mark.django_db
def test_an_admin_session_is_no_key_to_the_api(client, staff_user, tenant):
    client.force_login(staff_user)
    response = client.get("/api/v1/products/", HTTP_X_TENANT_SLUG="acme")
    assert response.status_code == 401
