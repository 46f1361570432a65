from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register


class CatalogConfig(AppConfig):
    name = "catalog"
    verbose_name = "Catalog"

    def ready(self) -> None:
        register(check_pgvector, Tags.database)
        register(check_webhook_targets, Tags.security, deploy=True)


def check_pgvector(app_configs: Any = None, databases: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """`manage.py migrate` (and `check --database default`) refuse a pgvector
    older than this code runs on (catalog/vector_engine.py)."""
    if not databases or "default" not in databases:
        return []
    from catalog.vector_engine import pgvector_problem

    problem = pgvector_problem()
    return [Error(problem, id="catalog.E001")] if problem else []


def check_webhook_targets(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """`check --deploy`: webhooks to http and private hosts are for development and tests only."""
    if not settings.WEBHOOK_ALLOW_PRIVATE:
        return []
    return [
        Warning(
            "WEBHOOK_ALLOW_PRIVATE is on: webhooks may be sent over http and to loopback, private and "
            "link-local hosts, so a tenant can make this server call its internal network (SSRF).",
            hint="Unset WEBHOOK_ALLOW_PRIVATE in production; it is for development and tests only.",
            id="catalog.W001",
        )
    ]
