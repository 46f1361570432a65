from typing import Any

from django.apps import AppConfig
from django.core.checks import CheckMessage, Error, Tags, register


class CatalogConfig(AppConfig):
    name = "catalog"
    verbose_name = "Catalog"

    def ready(self) -> None:
        register(check_pgvector, Tags.database)


def check_pgvector(app_configs: Any = None, databases: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """`manage.py migrate` (and `check --database default`) refuse a pgvector
    older than this code runs on (catalog/vector_engine.py)."""
    if not databases or "default" not in databases:
        return []
    from catalog.vector_engine import pgvector_problem

    problem = pgvector_problem()
    return [Error(problem, id="catalog.E001")] if problem else []
