import logging

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from media_pipeline.bridge import Bridge


class Command(BaseCommand):
    help = "Turn S3 event notifications from SQS into media rows and processing tasks (runs until SIGTERM)."

    def add_arguments(self, parser):
        parser.add_argument("--queue-url", default=settings.SQS_QUEUE_URL, help="Default: SQS_QUEUE_URL.")
        parser.add_argument("--wait-seconds", type=int, default=settings.SQS_WAIT_SECONDS)
        parser.add_argument("--batch-size", type=int, default=settings.SQS_BATCH_SIZE)
        parser.add_argument("--once", action="store_true", help="One receive call, then exit.")

    def handle(self, *args, queue_url: str, wait_seconds: int, batch_size: int, once: bool, **options):
        if not queue_url:
            raise CommandError("No queue: set SQS_QUEUE_URL or pass --queue-url.")
        if not 1 <= batch_size <= 10 or not 0 <= wait_seconds <= 20:
            raise CommandError("--batch-size must be 1..10 and --wait-seconds 0..20 (SQS limits).")
        logging.getLogger("media_pipeline.bridge").setLevel(logging.INFO)
        self.stdout.write(f"Bridging {queue_url} (long polls of {wait_seconds} s, up to {batch_size} messages).")
        Bridge(queue_url, wait_seconds=wait_seconds, batch_size=batch_size).run(max_batches=1 if once else None)
