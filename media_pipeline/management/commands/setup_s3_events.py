import json
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from catalog import formats
from catalog.aws import s3_client, sqs_client

if TYPE_CHECKING:
    from mypy_boto3_s3.type_defs import QueueConfigurationTypeDef

MAX_RECEIVE_COUNT = 5
VISIBILITY_TIMEOUT_S = 300
RETENTION_S = 14 * 24 * 3600


class Command(BaseCommand):
    help = (
        "Create (idempotently) the SQS queue with its dead-letter queue and the bucket notification that "
        "sends clients/ uploads to it. For development and moto; production does the same in its IaC."
    )

    def add_arguments(self, parser):
        parser.add_argument("--bucket", default=settings.S3_BUCKET_NAME, help="Default: S3_BUCKET_NAME.")
        parser.add_argument("--queue-name", default="stockmind-media-events")
        parser.add_argument("--create-bucket", action="store_true", help="Create the bucket if it is missing.")

    def handle(self, *args, bucket: str, queue_name: str, create_bucket: bool, **options):
        if not bucket:
            raise CommandError("No bucket: set S3_BUCKET_NAME or pass --bucket.")
        s3, sqs = s3_client(), sqs_client()
        if create_bucket and bucket not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
            s3.create_bucket(Bucket=bucket)

        retention = str(RETENTION_S)
        dlq_url = sqs.create_queue(QueueName=f"{queue_name}-dlq", Attributes={"MessageRetentionPeriod": retention})[
            "QueueUrl"
        ]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        queue_url = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "s3.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": queue_arn,
                    "Condition": {"ArnLike": {"aws:SourceArn": f"arn:aws:s3:::{bucket}"}},
                }
            ],
        }
        sqs.set_queue_attributes(
            QueueUrl=queue_url,
            Attributes={
                "VisibilityTimeout": str(VISIBILITY_TIMEOUT_S),
                "MessageRetentionPeriod": retention,
                "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVE_COUNT}),
                "Policy": json.dumps(policy),
            },
        )
        # S3 allows one suffix per rule, so one configuration per accepted extension.
        configurations: list[QueueConfigurationTypeDef] = [
            {
                "Id": f"stockmind-{extension.lstrip('.')}",
                "QueueArn": queue_arn,
                "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"],
                "Filter": {
                    "Key": {
                        "FilterRules": [{"Name": "prefix", "Value": "clients/"}, {"Name": "suffix", "Value": extension}]
                    }
                },
            }
            for extension in formats.BY_EXTENSION
        ]
        s3.put_bucket_notification_configuration(
            Bucket=bucket, NotificationConfiguration={"QueueConfigurations": configurations}
        )
        self.stdout.write(
            self.style.SUCCESS(f"Bucket {bucket} notifies {queue_name} (dead letters: {queue_name}-dlq).")
        )
        self.stdout.write(f"SQS_QUEUE_URL={queue_url}")
