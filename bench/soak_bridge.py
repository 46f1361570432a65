"""`manage.py sqs_bridge` for the soak: the same Bridge, which can be told to
die by SIGKILL when it is about to delete the Nth message that made media of
an object put in the bucket: after the media were recorded and enqueued,
before SQS forgets the message.

    .venv/bin/python bench/soak_bridge.py [--wait-seconds 1] [--die-at-delete N --marker FILE]

The fault lives here, not in the app: the message must come back after its
visibility timeout and be recognised by the next bridge, nothing duplicated.
Settings (queue, endpoints, database) come from the environment.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--wait-seconds", type=int, default=1)
    parser.add_argument("--die-at-delete", type=int, default=0, help="SIGKILL itself before the Nth delete (0: never)")
    parser.add_argument("--marker", type=Path, help="where to write the message it died holding")
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings

    from catalog.models import Media
    from media_pipeline.bridge import Bridge
    from media_pipeline.s3_events import parse_message

    class DyingBridge(Bridge):
        deletes = 0

        def delete(self, message: dict) -> None:
            # Counted: messages that made media of an object put in the bucket
            # (not the events of the API's own uploads, which it ignores).
            keys = [event.key for event in parse_message(message.get("Body", ""))]
            if Media.objects.filter(storage_key__in=keys, source=Media.Source.S3).exists():
                self.deletes += 1
            if args.die_at_delete and self.deletes == args.die_at_delete:
                args.marker.write_text(json.dumps({"message_id": message.get("MessageId"), "keys": keys}))
                print(f"dying before deleting message {message.get('MessageId')} ({keys})", flush=True)
                os.kill(os.getpid(), signal.SIGKILL)
            super().delete(message)

    logging.getLogger("media_pipeline.bridge").setLevel(logging.INFO)
    print(f"bridging {settings.SQS_QUEUE_URL}", flush=True)
    DyingBridge(settings.SQS_QUEUE_URL, wait_seconds=args.wait_seconds, batch_size=settings.SQS_BATCH_SIZE).run()


if __name__ == "__main__":
    main()
