"""Rate limiting per API key: API_RATE_LIMIT requests per period, counted in
the shared cache (Redis), so every web process enforces one budget per key."""

from __future__ import annotations

import logging

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle

from config.transient import TRANSIENT_ERRORS

logger = logging.getLogger(__name__)


class ApiKeyRateThrottle(SimpleRateThrottle):
    """Over the limit: 429 `rate_limited` with `Retry-After` (catalog/api/errors.py)."""

    scope = "api_key"

    def get_rate(self) -> str | None:
        return settings.API_RATE_LIMIT or None  # empty: no limit

    def allow_request(self, request, view) -> bool:
        try:
            return super().allow_request(request, view)
        except TRANSIENT_ERRORS as exc:
            # The cache is down: serve unthrottled rather than refuse everything.
            logger.warning("rate limit not checked, the cache is unavailable: %s", exc)
            return True

    def get_cache_key(self, request, view) -> str | None:
        key = request.auth
        if key is None:
            return None  # not authenticated: refused with 401 before this matters
        return self.cache_format % {"scope": self.scope, "ident": key.prefix}
