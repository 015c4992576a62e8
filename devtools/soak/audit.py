"""The soak's audit: what must hold in the database and the sandbox's records after the faults, each
invariant with its figure. Any invariant that fails fails the soak."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from devtools.bench.calls.scripts import Verdict
from devtools.soak import faults
from devtools.soak.faults import Fault
from devtools.soak.people import People

# An offer past its time is closed by the first sweep after it: the sweep job, then the expiry job it
# queues, run in turn on the RQ workers, on a machine that the soak keeps busy.
JOBS_RUN_S = 2
# The faults that can take a sweep: its queued job (Redis restarted), its run (the database's
# connections ended under it, the RQ worker running it killed), or its enqueueing (the scheduler
# killed, until `up` has started it again). The next sweep then does its work.
TAKE_A_SWEEP = (faults.REDIS_AOF, faults.REDIS_EMPTY, faults.DATABASE, faults.RQ_WORKER, faults.SCHEDULER)

# A message tried once, whose retry found it moot (an offer closed meanwhile): not to be tried again.
MOOT_PENDING = "status = 'pending' AND attempts > 0 AND next_attempt_at IS NULL"

# Messages the helpline sends once per request (or per assignment), whatever it lives through.
ONCE_PER_REQUEST = ("request_created", "assigned_citizen", "assigned_worker", "feedback", "completed_worker")


@dataclass(frozen=True)
class Invariant:
    name: str
    figure: str
    held: bool


@dataclass(frozen=True)
class Evidence:
    """What the soak saw from outside: the callers' calls, what people sent, what reached the sandbox."""

    verdicts: Sequence[Verdict]
    people: People
    sandbox_messages: Sequence[dict[str, Any]]
    sandbox_calls: Sequence[dict[str, Any]]
    faults: Sequence[Fault]
    server_errors: int  # webhook answers with a 5xx status, to callers and people alike
    offer_timeout_s: int
    sweep_interval_s: int
    drained: bool  # the helpline was quiet (nothing under way) before the drain's limit
    load_started_at: datetime  # wall clock at the load's start, to place what the database dated


def audit(engine: sa.Engine, evidence: Evidence) -> list[Invariant]:
    with engine.connect() as connection:
        return [
            *_bookings(connection, evidence),
            Invariant(
                "drained: nothing left under way after the load",
                "quiet" if evidence.drained else "still busy at the drain's limit",
                evidence.drained,
            ),
            _nothing_stuck(connection),
            *_assignments(connection),
            _inbound(connection, evidence.people),
            *_sends(connection, evidence),
            _lost(connection, evidence),
            _offers_closed(connection, evidence),
            _faults(evidence.faults),
            Invariant(
                "no webhook answered with a 5xx", f"{evidence.server_errors} answered 5xx", not evidence.server_errors
            ),
        ]


def _rows(connection: sa.Connection, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in connection.execute(sa.text(sql), params).all()]


def _counts(connection: sa.Connection, sql: str) -> dict[str, int]:
    """A `SELECT key, count(*) … GROUP BY key` as a dict."""
    return {str(row[0]): int(row[1]) for row in _rows(connection, sql)}


def _bookings(connection: sa.Connection, evidence: Evidence) -> list[Invariant]:
    """Every number a caller heard is that call's one request; every phone request has its call."""
    rows = _rows(
        connection,
        # a rework visit (rework_of_id) is booked on the feedback call or by a rating SMS, not by a call of its own
        "SELECT number, split_part(idempotency_key, ':', 2) AS call_sid FROM service_request "
        "WHERE channel = 'ivr' AND rework_of_id IS NULL",
    )
    by_call: dict[str, list[str]] = {}
    for number, call_sid in rows:
        by_call.setdefault(call_sid, []).append(number)
    heard = [v for v in evidence.verdicts if v.booked]
    wrong = [v for v in heard if by_call.get(v.call_sid) != [v.booked]]
    stored = {str(number) for (number,) in _rows(connection, "SELECT number FROM service_request")}
    unknown = [f"{n} (to {v.call_sid})" for v in evidence.verdicts for n in v.read_back if n not in stored]
    placed = {v.call_sid for v in evidence.verdicts}
    logged = {sid for (sid,) in _rows(connection, "SELECT call_sid FROM call_log")}
    orphans = [sid for sid in by_call if sid not in placed or sid not in logged]
    return [
        Invariant(
            "every request number a caller heard exists exactly once, as that call's request",
            f"{len(heard):,} heard, {len(wrong)} not so; {len(unknown)} read back but unknown"
            + (f" ({', '.join(unknown[:3])})" if unknown else ""),
            not wrong and not unknown,
        ),
        Invariant(
            "no request without its call (placed by a caller, and in the call log)",
            f"{len(rows):,} phone requests, {len(orphans)} without",
            not orphans,
        ),
    ]


def _nothing_stuck(connection: sa.Connection) -> Invariant:
    counts = _counts(connection, "SELECT status, count(*) FROM service_request GROUP BY status")
    stuck = counts.get("new", 0) + counts.get("offered", 0)
    figure = ", ".join(f"{status} {n:,}" for status, n in sorted(counts.items()))
    return Invariant("no request stuck new or offered", figure or "no requests", not stuck)


def _assignments(connection: sa.Connection) -> list[Invariant]:
    doubled = _rows(
        connection,
        "SELECT request_id FROM offer WHERE status = 'accepted' GROUP BY request_id HAVING count(*) > 1",
    )
    assigned = _rows(connection, "SELECT count(*) FROM service_request WHERE assigned_at IS NOT NULL")[0][0]
    overlapping = _rows(
        connection,
        "SELECT a.worker_id FROM service_request a JOIN service_request b ON a.worker_id = b.worker_id "
        "AND a.id < b.id AND a.assigned_at IS NOT NULL AND b.assigned_at IS NOT NULL "
        "AND a.assigned_at < coalesce(b.completed_at, now()) AND b.assigned_at < coalesce(a.completed_at, now())",
    )
    return [
        Invariant(
            "no request assigned twice (at most one accepted offer)",
            f"{assigned:,} assigned, {len(doubled)} with two",
            not doubled,
        ),
        Invariant(
            "no worker on two jobs at once",
            f"{len(overlapping)} overlapping assignments",
            not overlapping,
        ),
    ]


def _inbound(connection: sa.Connection, people: People) -> Invariant:
    recorded: dict[str, tuple[int, bool]] = {
        str(row[0]): (int(row[1]), bool(row[2]))
        for row in _rows(
            connection,
            "SELECT message_sid, count(*), bool_and(status = 'handled') FROM sms_log "
            "WHERE direction = 'inbound' GROUP BY message_sid",
        )
    }
    sids = [sent.sid for sent in people.sent]
    missing = [sid for sid in sids if sid not in recorded]
    twice = [sid for sid in sids if sid in recorded and recorded[sid][0] > 1]
    unhandled = [sid for sid in sids if sid in recorded and not recorded[sid][1]]
    deliveries = sum(sent.deliveries for sent in people.sent)
    return Invariant(
        "every inbound SMS recorded once and handled",
        f"{len(sids):,} sent ({deliveries:,} deliveries): {len(missing)} missing, {len(twice)} twice, "
        f"{len(unhandled)} not handled",
        not (missing or twice or unhandled),
    )


def _sends(connection: sa.Connection, evidence: Evidence) -> list[Invariant]:
    """At most one send of each message: one sandbox record per SmsLog row, one offer text or call per
    offer, one of each once-only message per request."""
    known = {sid for (sid,) in _rows(connection, "SELECT message_sid FROM sms_log WHERE message_sid IS NOT NULL")}
    unknown = [m["sid"] for m in evidence.sandbox_messages if m["sid"] not in known]
    offers_texted = _rows(
        connection,
        "SELECT s.request_id, s.worker_id FROM sms_log s WHERE s.template = 'offer' AND s.message_sid IS NOT NULL "
        "GROUP BY s.request_id, s.worker_id HAVING count(*) > "
        "(SELECT count(*) FROM offer o WHERE o.request_id = s.request_id AND o.worker_id = s.worker_id)",
    )
    once = _once(connection)
    calls = Counter(_call_key(call) for call in evidence.sandbox_calls)
    twice_called = [key for key, n in calls.items() if key and n > 1]
    return [
        Invariant(
            "at most one send per message (each SMS sent once, each offer texted or rung once)",
            f"{len(evidence.sandbox_messages):,} SMS and {len(evidence.sandbox_calls):,} calls sent: "
            f"{len(unknown)} SMS the helpline has no record of, {len(offers_texted)} offers texted twice, "
            f"{len(once)} once-only messages sent twice, {len(twice_called)} offers or requests rung twice",
            not (unknown or offers_texted or once or twice_called),
        ),
    ]


def _once(connection: sa.Connection) -> list[tuple[Any, ...]]:
    query = sa.text(
        "SELECT request_id, template FROM sms_log WHERE direction = 'outbound' AND message_sid IS NOT NULL "
        "AND template IN :templates GROUP BY request_id, template, to_number HAVING count(*) > 1"
    ).bindparams(sa.bindparam("templates", expanding=True))
    return [tuple(row) for row in connection.execute(query, {"templates": list(ONCE_PER_REQUEST)}).all()]


def _call_key(call: dict[str, Any]) -> str | None:
    """What a call of ours was for: an offer, or a request's feedback."""
    callback = call.get("status_callback") or ""
    for kind in ("offer=", "feedback="):
        if kind in callback:
            return kind + callback.split(kind, 1)[1].split("&", 1)[0]
    return None


def _lost(connection: sa.Connection, evidence: Evidence) -> Invariant:
    """Every SMS the helpline meant to send reached the sandbox, or is visibly not sent (an agent sees
    it on the request) or moot (an offer closed before it could go)."""
    statuses = _counts(connection, "SELECT status, count(*) FROM sms_log WHERE direction = 'outbound' GROUP BY status")
    pending = _rows(
        connection,
        f"SELECT count(*) FROM sms_log WHERE direction = 'outbound' AND status = 'pending' AND NOT ({MOOT_PENDING})",  # noqa: S608 (a constant)
    )[0][0]
    due = _rows(
        connection,
        "SELECT count(*) FROM sms_log WHERE direction = 'outbound' AND status = 'send_failed' "
        "AND next_attempt_at IS NOT NULL",
    )[0][0]
    arrived = {m["sid"] for m in evidence.sandbox_messages}
    claimed = [
        sid
        for (sid,) in _rows(
            connection, "SELECT message_sid FROM sms_log WHERE message_sid IS NOT NULL AND direction = 'outbound'"
        )
        if sid not in arrived
    ]
    untexted = _rows(
        connection,
        "SELECT r.id FROM service_request r JOIN caller c ON c.id = r.caller_id WHERE r.channel = 'ivr' "
        "AND r.rework_of_id IS NULL "  # a rework's number is heard on the feedback call, or texted as rework_citizen
        "AND NOT EXISTS (SELECT 1 FROM sms_log s WHERE s.request_id = r.id AND s.template = 'request_created')",
    )
    untold = _rows(
        connection,
        "SELECT r.id FROM service_request r WHERE r.assigned_at IS NOT NULL AND r.worker_id IS NOT NULL "
        "AND NOT EXISTS (SELECT 1 FROM sms_log s WHERE s.request_id = r.id AND s.template = 'assigned_worker')",
    )
    given_up = statuses.get("not_sent", 0)
    moot = statuses.get("send_failed", 0) - due + statuses.get("pending", 0) - pending
    lost = pending + due + len(claimed) + len(untexted) + len(untold)
    sent = sum(n for status, n in statuses.items() if status not in ("pending", "send_failed", "not_sent"))
    return Invariant(
        "0 messages lost (each reached the sandbox, or is visibly not sent)",
        f"{sent:,} sent, {given_up} not sent (shown to agents), {moot} moot; lost: {pending} pending, {due} still "
        f"due, {len(claimed)} sent but not received, {len(untexted)} requests never texted, "
        f"{len(untold)} assignments never told",
        not lost,
    )


def _offers_closed(connection: sa.Connection, evidence: Evidence) -> Invariant:
    """Every offer is closed by its expiry (a batch job the movers queue once its time is up), or else
    by the first sweep after its time. A fault may take that sweep (`TAKE_A_SWEEP`): then the next
    sweep closes it, one interval later, and the figure says how many needed that."""
    pending = _rows(connection, "SELECT count(*) FROM offer WHERE status = 'pending'")[0][0]
    closed = _rows(
        connection,
        "SELECT expires_at, answered_at, extract(epoch FROM answered_at - expires_at), "
        "(SELECT e.reason FROM audit_event e WHERE e.action = 'offer.expired' "
        "AND (e.detail ->> 'offer_id')::int = o.id LIMIT 1) FROM offer o "
        "WHERE status <> 'pending' AND expires_at IS NOT NULL",
    )
    bound = evidence.sweep_interval_s + JOBS_RUN_S
    takers = [
        evidence.load_started_at + timedelta(seconds=fault.at_s)
        for fault in evidence.faults
        if fault.kind in TAKE_A_SWEEP
    ]
    late = [row for row in closed if float(row[2]) > bound]
    lost_sweep = [
        row
        for row in late
        if float(row[2]) <= bound + evidence.sweep_interval_s and any(row[0] <= at <= row[1] for at in takers)
    ]
    over = sorted((row for row in late if row not in lost_sweep), key=lambda row: -float(row[2]))
    worst = max((float(row[2]) for row in closed), default=0.0)
    examples = "; ".join(
        f"due at {(due - evidence.load_started_at).total_seconds():.0f} s, closed {float(by):.1f} s after ({why})"
        for due, _, by, why in over[:5]
    )
    return Invariant(
        f"every offer closed within its timeout ({evidence.offer_timeout_s} s) + one sweep interval "
        f"({evidence.sweep_interval_s} s) + {JOBS_RUN_S} s for the sweep and the expiry it queues to run; "
        "one interval more where a fault took that sweep (Redis restarted, the database's connections ended, "
        "the RQ worker or the scheduler killed)",
        f"{len(closed):,} closed, {pending} still open; latest {max(0.0, worst):.1f} s past its timeout; "
        f"{len(lost_sweep)} a sweep later, such a fault between; {len(over)} over"
        + (f" (worst: {examples})" if examples else ""),
        not pending and not over,
    )


def _faults(faults: Sequence[Fault]) -> Invariant:
    missed = [f"{f.kind}: {', '.join(f.missed)}" for f in faults if f.missed]
    return Invariant(
        "every fault recovered from (process replaced, webhooks answering)",
        f"{len(faults)} faults, {len(missed)} not recovered" + (f" ({'; '.join(missed)})" if missed else ""),
        not missed,
    )
