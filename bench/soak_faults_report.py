"""The fault run's tables and checks (bench/soak_faults.py), from the data
it collected (bench/soak_faults_deploy.py)."""

from __future__ import annotations

import sys
from collections import Counter

from bench.report import Check, Table, checks_table, emit, passed
from bench.soak_faults_deploy import (
    ROUTES,
    SETTINGS,
    SQS_VISIBILITY_TIMEOUT_S,
    STUCK_AFTER_MINUTES,
    Outcome,
    Result,
    http_errors_by_window,
    route_ids,
)

# The recovery table's rows read from the logs (log_counts): (label, count).
RECOVERY_COUNTS = [
    ("transient errors retried by the task (Retry in ...)", "worker retries"),
    ("tasks lost with their worker (WorkerLostError, redelivered)", "worker lost"),
    ("deliveries of items already taken or done, skipped by the claim", "deliveries skipped"),
    ("results discarded: the claim was lost meanwhile", "claims lost"),
    ("tasks out of retries in an outage: their items back to pending", "back to pending"),
    ("sweeper: stuck items requeued", "sweeper requeued stuck"),
    ("sweeper: stuck items failed (out of attempts)", "sweeper failed stuck"),
    ("sweeper: pending items enqueued again", "sweeper requeued pending"),
    ("bridge: messages left for retry (database or broker down)", "bridge messages left for retry"),
    ("bridge: batches not received, the database being down", "bridge pauses"),
    ("bridge: events seen again and recognised (duplicate)", "bridge duplicate"),
    ("bridge: media created", "bridge created"),
    ("web: uploads answered 500 on the media key's unique constraint", "web key conflicts"),
    ("web: requests answered 500 from the rate limiter (its counter in Redis)", "web throttle errors"),
]


def report(args, result: Result, outcome: Outcome, seconds: float) -> None:
    emit(faults_table(args, result, outcome))
    emit(outcome_table(result, outcome))
    emit(recovery_table(result))
    checks = [*item_checks(result, outcome), *recovery_checks(args, result), good_files_check(result, outcome)]
    title = "Faults, nothing lost: the checks"
    requirement = "Requirement 1 (faults, nothing lost)"
    emit(checks_table("faults-verdict", title, checks, requirement, seconds / 60, unmet="no"))
    if not passed(checks):
        sys.exit(1)


def faults_table(args, result: Result, outcome: Outcome) -> Table:
    timeline = Table(
        "faults",
        f"Faults injected while {len(result.files):,} items were fed over {result.window:.0f} s",
        ["t, s", "fault", "what was done", "items it caught", "those items now"],
    )
    for fault, now in sorted(zip(result.faults, outcome.held_now, strict=True), key=lambda pair: pair[0].at):
        caught = f"{len(fault.held)} processing" if fault.kind.startswith("worker") else ""
        if fault.kind == "bridge" and result.bridge_message:
            caught = f"media {', '.join(str(pk) for pk, _ in result.bridge_message['media'])}"
            now = Counter(status for _, status in result.bridge_message["media"])
        timeline.add(
            round(fault.at), fault.kind, fault.detail, caught, ", ".join(f"{n} {s}" for s, n in now.items()) or "-"
        )
    timeline.notes.append(
        f"Seed {args.seed}. Worker processes started: {result.workers_started} (the first and one per whole-worker "
        f"kill); bridges started: {result.bridges_started}. Settings: "
        + ", ".join(f"{k}={v}" for k, v in SETTINGS.items())
        + f"; the tenant's stuck threshold {STUCK_AFTER_MINUTES} min; the event queue's visibility timeout "
        f"{SQS_VISIBILITY_TIMEOUT_S} s. Everything else at production's defaults (API_RATE_LIMIT 1200/min included)."
    )
    return timeline


def outcome_table(result: Result, outcome: Outcome) -> Table:
    check, feed = result.check, result.feed
    table = Table(
        "faults",
        "Where every item ended",
        ["items", "fed", "media rows", "ready", "failed", "of which bad files", "pending/processing", "missing"],
    )
    for label, path, kind in ROUTES:
        fed = [f for f, p in result.files if p == path and f.kind == kind]
        ids = route_ids(result, path, kind)
        counts = outcome.route_counts[(path, kind)]
        missing = sum(1 for key in result.unseen if f"/media/{kind}/" in key) if path == "s3" else 0
        table.add(
            label,
            len(fed),
            len(ids),
            counts.get("ready", 0),
            counts.get("failed", 0),
            len([pk for pk in ids if pk in outcome.bad_ids and pk in outcome.failed_ids]),
            counts.get("pending", 0) + counts.get("processing", 0),
            missing,
        )
    table.notes.append(
        f"Vectors: {check.vectors:,} ({check.frames} of them for video frames). Uploads refused by the API: "
        f"{len(feed.http_rejected)}. {'Feeder errors: ' + '; '.join(feed.errors) + '. ' if feed.errors else ''}"
        "The reasons of the failed:"
    )
    table.notes.append("")
    for reason, n in sorted(check.reasons.items(), key=lambda item: -item[1]):
        table.notes.append(f"- {n}x: {reason}")
    return table


def recovery_table(result: Result) -> Table:
    logs = result.logs
    table = Table("faults", "What recovered them (from the processes' logs)", ["mechanism", "count"])
    for label, count in RECOVERY_COUNTS:
        table.add(label, logs[count])
    table.add("tracebacks in the worker logs / the web log", f"{logs['tracebacks']} / {logs['web tracebacks']}")
    for window, statuses in http_errors_by_window(result.feed, result.faults).items():
        table.add(
            f"upload answers that were not 2xx/4xx, during {window}",
            ", ".join(f"{n}x {s}" for s, n in statuses.items()),
        )
    table.notes.append(
        "A `pending` item queued behind the backlog for longer than PENDING_REQUEUE_MINUTES is enqueued again by "
        "the sweeper, which cannot tell it from one whose message was lost; the claim skips the extra deliveries."
    )
    if logs["web key conflicts"]:
        table.notes.append(
            "500 on the media key's unique constraint: the S3 event of a direct upload's own object reached the "
            "bridge before the upload inserted its row; the bridge made a media of the key first, the upload's "
            "insert failed, it deleted its object and answered 500 (the client's retry was accepted, and the "
            "bridge removed its media on the object's removal event)."
        )
    if logs["web throttle errors"]:
        table.notes.append(
            "500 from the rate limiter: while Redis is down, every API request fails in the per-key rate limit "
            "(Django's Redis cache raises), uploads and searches included."
        )
    return table


def item_checks(result: Result, outcome: Outcome) -> list[Check]:
    """Every item sent has one media row, settled, with its reason or its vectors."""
    check = result.check
    sent = len(result.feed.s3_keys) + len(result.feed.http_ids)
    bad_ids, failed_ids = outcome.bad_ids, outcome.failed_ids
    return [
        Check(
            "every object and accepted upload has its media row",
            f"{len(result.unseen)} missing of {sent:,}",
            not result.unseen and check.found == len(result.ids) == sent,
        ),
        Check(
            "no media row nobody sent, none twice",
            f"{result.extra} extra, {outcome.twice} twice",
            not result.extra and not outcome.twice,
        ),
        Check("every item ready or failed", f"{len(check.unsettled)} pending or processing", not check.unsettled),
        Check(
            "every failed item has its reason",
            f"{len(check.failed_without_reason)} without",
            not check.failed_without_reason,
        ),
        Check(
            "exactly one set of vectors each",
            f"{len(check.bad_vectors)} wrong" + (f": {check.bad_vectors[:3]}" if check.bad_vectors else ""),
            not check.bad_vectors,
        ),
        Check(
            "bad files failed with their reason",
            f"{len(bad_ids & failed_ids)} of {len(bad_ids)}",
            bad_ids <= failed_ids,
        ),
    ]


def recovery_checks(args, result: Result) -> list[Check]:
    """The queues drained, the bridge's lost message recognised, all of it without hand work."""
    last_fault = max((f.ended_at or f.at for f in result.faults), default=0.0)
    message = result.bridge_message
    again = message.get("media", [])
    return [
        Check(
            "event queue and dead-letter queue empty",
            f"{result.depths[0]} and {result.depths[1]} messages",
            result.depths == (0, 0),
        ),
        Check(
            "the message the bridge died holding: delivered again, recognised, one media",
            f"the next bridge made it {' then '.join(result.bridge_outcomes) or 'nothing (not seen)'}; "
            f"{len(again)} media, {', '.join(s for _, s in again)}"
            if message
            else "the bridge never died",
            bool(message) and bool(result.bridge_outcomes) and len(again) == len(message.get("keys", [])),
        ),
        Check(
            "recovered with no hand work",
            f"all settled {result.recovered_at - last_fault:.0f} s after the last fault ended"
            if result.recovered_at is not None
            else f"not within {args.recovery_timeout:.0f} s",
            result.recovered_at is not None,
        ),
    ]


def good_files_check(result: Result, outcome: Outcome) -> Check:
    bad_ids, failed_ids = outcome.bad_ids, outcome.failed_ids
    return Check(
        "good files ready (not required: failed with a reason is allowed)",
        f"{len(failed_ids - bad_ids)} failed of {len(result.ids) - len(bad_ids):,}",
        not failed_ids - bad_ids,
        required=False,
    )
