"""Reading S3 event notifications as SQS delivers them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import unquote_plus


class MalformedMessage(ValueError):
    """A message that is not an S3 event notification."""


@dataclass(frozen=True)
class ObjectEvent:
    name: str  # e.g. ObjectCreated:Put, ObjectRemoved:Delete
    bucket: str
    key: str  # decoded: '+' is a space, %XX is UTF-8
    size: int
    etag: str
    sequencer: str

    @property
    def created(self) -> bool:
        return self.name.startswith("ObjectCreated:")

    @property
    def removed(self) -> bool:
        return self.name.startswith("ObjectRemoved:")


def parse_message(body: str) -> list[ObjectEvent]:
    """The object events in one SQS message body; [] for S3's test event.
    Raises MalformedMessage for anything else."""
    try:
        payload = json.loads(body)
    except (TypeError, ValueError) as exc:
        raise MalformedMessage(f"The message is not JSON ({exc}).") from exc
    if isinstance(payload, dict) and payload.get("Event") == "s3:TestEvent":
        return []
    if isinstance(payload, dict) and "Message" in payload and "Records" not in payload:
        return parse_message(payload["Message"])  # delivered through SNS
    records = payload.get("Records") if isinstance(payload, dict) else None
    if not isinstance(records, list):
        raise MalformedMessage("The message has no S3 'Records'.")
    events = []
    for record in records:
        try:
            s3 = record["s3"]
            obj = s3["object"]
            events.append(
                ObjectEvent(
                    name=str(record["eventName"]).removeprefix("s3:"),
                    bucket=str(s3["bucket"]["name"]),
                    key=unquote_plus(str(obj["key"])),
                    size=int(obj.get("size") or 0),
                    etag=str(obj.get("eTag") or obj.get("etag") or "").strip('"'),
                    sequencer=str(obj.get("sequencer") or ""),
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise MalformedMessage(f"A record lacks {exc}.") from exc
    return events


def newer(sequencer: str, than: str) -> bool:
    """S3 sequencers are hex strings comparable once padded to one length."""
    if not sequencer or not than:
        return True
    width = max(len(sequencer), len(than))
    return sequencer.rjust(width, "0") > than.rjust(width, "0")
