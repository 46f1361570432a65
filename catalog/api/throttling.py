"""Rate limiting per API key: API_RATE_LIMIT requests per period, counted in
the shared cache (Redis), so every web process enforces one budget per key."""

from __future__ import annotations

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle


class ApiKeyRateThrottle(SimpleRateThrottle):
    """Over the limit: 429 `rate_limited` with `Retry-After` (catalog/api/errors.py)."""

    scope = "api_key"

    def get_rate(self) -> str | None:
        return settings.API_RATE_LIMIT or None  # empty: no limit

    def get_cache_key(self, request, view) -> str | None:
        key = request.auth
        if key is None:
            return None  # not authenticated: refused with 401 before this matters
        return self.cache_format % {"scope": self.scope, "ident": key.prefix}
