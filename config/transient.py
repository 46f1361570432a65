"""Which exceptions mean "a service is unavailable, try again later" rather
than "this request or item is bad": the database, the broker or cache, the
object storage. Tasks retry on them, the API answers 503, the bridge backs off."""

from __future__ import annotations

import django.db
import kombu.exceptions
import redis.exceptions
from botocore import exceptions as botocore_exceptions

TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    django.db.OperationalError,
    django.db.InterfaceError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    kombu.exceptions.OperationalError,
    botocore_exceptions.EndpointConnectionError,
    botocore_exceptions.ConnectionClosedError,
    botocore_exceptions.ConnectTimeoutError,
    botocore_exceptions.ReadTimeoutError,
    ConnectionError,
    TimeoutError,
)
