"""Which exceptions mean "try again later" rather than "this item is bad"."""

from __future__ import annotations

import django.db
import kombu.exceptions
import redis.exceptions
from botocore import exceptions as botocore_exceptions

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
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
