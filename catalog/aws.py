"""boto3 clients configured from settings, the same way in every process."""

from __future__ import annotations

from typing import TYPE_CHECKING

import boto3
from botocore.config import Config
from django.conf import settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

# Bounded timeouts: a hung endpoint becomes a transient error, not a hung process.
CLIENT_CONFIG = Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 3, "mode": "standard"})


def s3_client() -> S3Client:
    return boto3.client(
        "s3", region_name=settings.AWS_REGION, endpoint_url=settings.AWS_S3_ENDPOINT_URL, config=CLIENT_CONFIG
    )


def sqs_client() -> SQSClient:
    return boto3.client(
        "sqs", region_name=settings.AWS_REGION, endpoint_url=settings.AWS_SQS_ENDPOINT_URL, config=CLIENT_CONFIG
    )
