"""The operators' console in the admin: the pipeline's stuck and failed lists,
the recognizer's versions and review list, each tenant's settings, the search
log. The dashboard is a page of the admin site itself (ops_console/sites.py)."""

from ops_console.admin import pipeline, recognizer, search_log, tenant_settings  # noqa: F401 - registers the admin classes
