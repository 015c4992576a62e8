"""Background jobs. Module-level functions that take ids, never ORM objects; each can run twice
(a retry, the sweeper) without doing its work twice."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from rq import get_current_job
from sqlmodel import Session, col, select

from core import phones, pincodes, slots
from dispatch import (
    callbacks,
    calllogs,
    changes,
    citizen_calls,
    context,
    enqueue,
    geoindex,
    inbox,
    ladder,
    locks,
    messages,
    offers,
    quality,
    retention,
    rework,
    visit,
)
from dispatch.matching import Candidate, rank
from storage import audit
from storage.audit import AuditAction
from storage.db import UNREACHABLE, commit_without_waiting_for_disk, session_scope
from storage.models import (
    CallbackAttempt,
    Caller,
    CitizenCall,
    CitizenCallStatus,
    Offer,
    OfferChannel,
    OfferStatus,
    Provider,
    RequestStatus,
    ServiceRequest,
    SmsDelivery,
    SmsHandling,
    SmsLog,
    User,
    VerificationStatus,
    Worker,
)
from telephony import webhook_url
from telephony.port import GatewayError

log = logging.getLogger(__name__)
HEARTBEAT_KEY = "sewamitra:jobs:heartbeat"
DATABASE_RETRY = enqueue.DATABASE_RETRY  # what the voice webhooks hand to a job
OFFER_SEND_BACKOFF = (10, 30)  # an offer that cannot be delivered after these retries goes unanswered
# An offer's SMS refused this long ago with no try since: the retry was lost (Redis restarted empty).
RESEND_LOST_AFTER = timedelta(seconds=max(OFFER_SEND_BACKOFF)) + timedelta(seconds=30)
NEW_REQUEST_GRACE = timedelta(seconds=30)  # a request this old and still new lost its dispatch job
# A dispatch job sends an offer's SMS it claimed only this soon after the claim: the sweeper sends a
# claimed message once its try's time to retry and NEW_REQUEST_GRACE are past (40 s), and a batch's
# sends slowed by a slow platform must not start so late that both send it. Later, the sweeper's.
SEND_CLAIMED_WITHIN = timedelta(seconds=15)
# An inbound SMS still being handled this long after its job claimed it was abandoned by a dead worker:
# RQ stops a live one at its timeout. (It was five minutes, RQ's default 180 s and more: a worker's YES
# caught by a killed RQ worker waited out the offer; the soak's drain waited for it.)
ABANDONED_AFTER = timedelta(seconds=enqueue.HANDLE_SMS_TIMEOUT_S + 30)
# A killed worker's dispatch lock lives its 60 s (locks.LIFE_MS): a dispatch of the same request does not
# wait for it but comes back after this (found by the soak: waits on such locks held both RQ workers).
DISPATCH_AGAIN_AFTER = timedelta(seconds=5)
RECORD_SENT_TRIES, RECORD_SENT_PAUSE_S = 3, 0.5  # recording an SMS Twilio took, on new connections
# A batch's sids are recorded after its sends, or once the oldest unrecorded is this old.
RECORD_SENT_WITHIN = timedelta(seconds=2)
UNANSWERED_FEEDBACK = AuditAction.FEEDBACK_CALL_UNANSWERED  # the citizen did not pick up the feedback call
INDEX_LOCK = "sewamitra:geo-rebuild-lock"


def now() -> datetime:
    """The moment by the job context's clock (tests freeze it)."""
    return context.current().clock.now()


def write_call_logs() -> str:
    """The call logs waiting in Redis, written (`dispatch.calllogs`); queued by the mover of delayed
    jobs when some wait. With the database out they wait, and the writer is queued again after
    `enqueue.CALL_LOG_WRITER_S`."""
    ctx = context.current()
    try:
        written = calllogs.write_due(ctx.engine, ctx.redis)
    except UNREACHABLE:
        log.warning("the database cannot be reached: %s call logs wait", calllogs.waiting(ctx.redis))
        return "the database cannot be reached"
    enqueue.call_log_writer_done(ctx.redis)
    return f"{written} written"


def heartbeat() -> str:
    """Prove the scheduler → queue → worker path is alive: /healthz reads the time it left."""
    job = get_current_job()
    if job is None:
        raise RuntimeError("heartbeat runs only as an RQ job")
    moment = now().isoformat()
    job.connection.set(HEARTBEAT_KEY, moment)
    return moment


def erase_expired() -> dict[str, int]:
    """Nightly: erase the personal data past its time (config.yaml's privacy.retention); twice is harmless."""
    ctx = context.current()
    return retention.sweep(ctx.engine, ctx.redis, ctx.settings, now()).as_detail()


def remind_verification_expiry() -> dict[str, int]:
    """Nightly: each agency is texted, once per expiry, about a worker whose police verification
    expires within `workers_quality.police_reminder_days_before` (an expired one gets no offers: the
    index and dispatch leave them out). The reminder is recorded with its SMS, by compare-and-set on
    the worker's row, so a second run, or two at once, sends nothing more; an SMS not sent is the
    sweeper's to send."""
    ctx = context.current()
    rules, today = ctx.settings.workers_quality, now().date()
    if rules.police_verification_valid_days <= 0:
        return {"reminded": 0}
    earliest = today - timedelta(days=rules.police_verification_valid_days)  # expiring today or later
    latest = earliest + timedelta(days=rules.police_reminder_days_before)
    with Session(ctx.engine) as session:
        due = session.exec(
            select(Worker.id).where(
                Worker.police_verification == VerificationStatus.VERIFIED,
                col(Worker.active),
                col(Worker.provider_id).is_not(None),
                col(Worker.police_verified_on) > earliest,
                col(Worker.police_verified_on) <= latest,
            )
        ).all()
    sent = [sms_id for worker_id in due if (sms_id := _remind(int(worker_id or 0), today)) is not None]
    for sms_id in sent:
        _try_send(sms_id, 0)
    return {"reminded": len(sent)}


def _remind(worker_id: int, today: date) -> int | None:
    """One worker's reminder, recorded with its SMS to the agency; None when not due or sent before."""
    ctx = context.current()
    with session_scope(ctx.engine) as session:
        worker = session.get(Worker, worker_id)
        provider = session.get(Provider, worker.provider_id) if worker and worker.provider_id else None
        if worker is None or provider is None or not provider.phone or not phones.indian_mobile(provider.phone):
            return None
        expiry = quality.reminder_due(
            worker.police_verified_on, today, ctx.settings.workers_quality, worker.police_reminder_for
        )
        if expiry is None:
            return None
        claimed = session.execute(
            sa.update(Worker)
            .where(
                col(Worker.id) == worker_id,
                sa.or_(col(Worker.police_reminder_for).is_(None), col(Worker.police_reminder_for) != expiry),
            )
            .values(police_reminder_for=expiry)
        ).rowcount  # type: ignore[attr-defined]
        if not claimed:
            return None
        values = {"worker": worker.name, "date": expiry.strftime("%d-%m-%Y")}
        sms_id = record_sms(session, provider.phone, "police_verification_due", "hi", values, worker_id=worker_id)
        reason = f"expires on {expiry.isoformat()}"
        audit.record(
            session,
            AuditAction.WORKER_VERIFICATION_REMINDED,
            actor="system",
            entity="worker",
            entity_id=worker_id,
            reason=reason,
            detail={"provider_id": provider.id},
        )
    return sms_id


# -- dispatch -------------------------------------------------------------------------------------


def enqueue_dispatch(request_id: int) -> None:
    """Queue the dispatch of a request, from a job (its context's Redis)."""
    enqueue.dispatch_request(context.current().redis, request_id)


def dispatch_due() -> str:
    """Dispatch the next requests due (`enqueue.DISPATCH.batch` at most), in one transaction. One whose
    round fails is rolled back alone and left for the sweeper, as a failed dispatch job's was, and the
    others go on; with the database unreachable the whole batch is left. The job fails if any did."""
    request_ids = enqueue.DISPATCH.take(context.current().redis)
    try:
        batch = _dispatch_batch(request_ids)
    except UNREACHABLE:
        log.exception("the database is unreachable: requests %s are left for the sweeper", request_ids)
        raise
    if batch.failed:
        raise DispatchFailed(f"the dispatch of requests {sorted(batch.failed)} failed (of {request_ids})")
    return f"dispatched {len(request_ids)}"


class DispatchFailed(Exception):
    """Some requests of a dispatch job's batch could not be dispatched (each logged with its error)."""


def dispatch_request(request_id: int) -> str:
    """Offer the request to the best workers near it, or escalate it; then send the offers (a batch
    of one: see `_dispatch_batch`). A round that fails raises its error."""
    batch = _dispatch_batch([request_id])
    if request_id in batch.failed:
        raise batch.failed[request_id]
    return batch.outcomes[request_id]


@dataclass
class Batch:
    """What a dispatch batch did: each request's outcome in words, and each failed round's error."""

    outcomes: dict[int, str]
    failed: dict[int, Exception]


def _dispatch_batch(request_ids: Sequence[int]) -> Batch:
    """Each request's round, in one transaction committed once (waiting for the disk if any offer's SMS
    was recorded): tried together, the rounds' offers written at once; should that fail, again with
    each round in a savepoint of its own, so that one that fails is rolled back alone (`_rounds`);
    then the offers are sent, from this job: each offer's SMS is recorded, its first try claimed, in
    the transaction (the outbox the sweeper sends from should this job die before sending), and sent
    after the commit. A request another dispatch holds comes back shortly."""
    ctx = context.current()
    _ensure_index()
    held = locks.take(ctx.redis, request_ids)
    batch = Batch({}, {})
    for request_id in request_ids:
        if request_id not in held.request_ids:
            # Another dispatch of this request holds it, or held it and was killed (its lock lives on): this
            # one comes back shortly, rather than keep one of the few RQ workers waiting on it.
            enqueue.dispatch_again(ctx.redis, request_id, DISPATCH_AGAIN_AFTER)
            batch.outcomes[request_id] = "another dispatch holds the request: again shortly"
    try:
        moment = now()
        with session_scope(ctx.engine) as session:
            # SQLite (Python's driver) opens no transaction before a SAVEPOINT: the RELEASE of each round's
            # commits it, and a batch's writes that fail after them could not take their rounds back.
            together = ctx.engine.dialect.name != "sqlite"
            try:
                rounds = _rounds(session, held.request_ids, moment, batch, together=together)
            except _NotTogether:
                log.warning("a dispatch batch tried together failed: each round again alone", exc_info=True)
                session.rollback()
                batch.failed.clear()
                rounds = _rounds(session, held.request_ids, moment, batch, together=False)
            deliveries = [delivery for result, found in rounds.values() for delivery in found]
            if not deliveries:
                commit_without_waiting_for_disk(session)  # a lost round is redone by the sweeper
    finally:
        locks.release(ctx.redis, held)
    for request_id, (result, _) in rounds.items():
        if result.again:
            enqueue.dispatch_again(ctx.redis, request_id, DISPATCH_AGAIN_AFTER)
        batch.outcomes[request_id] = result.reason or f"offered to {len(result.offers)}"
    enqueue.offer_expiries(ctx.redis, [(delivery.offer_id, delivery.expires_at) for delivery in deliveries])
    _send_offers(deliveries)
    return batch


def _send_offers(deliveries: Sequence[Delivery]) -> None:
    """Send a batch's offers; the sids the platform gave are recorded together, in one transaction after
    the sends, or before a send once the oldest unrecorded is `RECORD_SENT_WITHIN` old (a job killed
    meanwhile leaves fewer to the platform's status reports, which fill a sid never written)."""
    sent: list[tuple[int, str]] = []
    oldest = now()
    for delivery in deliveries:
        if sent and now() - oldest >= RECORD_SENT_WITHIN:
            _record_batch_sent(sent)
            sent = []
        if not sent:
            oldest = now()
        sid = _deliver(delivery)
        if sid is not None and delivery.sms is not None:
            sent.append((delivery.sms.id, sid))
    if sent:
        _record_batch_sent(sent)


def _record_batch_sent(sent: Sequence[tuple[int, str]]) -> None:
    """`_record_sent`, whose failure leaves the sids to the platform's status reports (`/sms/status?sms=`)
    and the batch's other sends going: the offers stand, their messages having gone."""
    try:
        _record_sent(context.current().engine, sent, now())
    except Exception:
        log.exception("SMS %s were sent, but their sids were not recorded: the platform's reports give them", sent)


def _rounds(
    session: Session, request_ids: Sequence[int], moment: datetime, batch: Batch, *, together: bool
) -> dict[int, tuple[offers.Dispatched, list[Delivery]]]:
    """A round of each request still to dispatch: its result and its offers' deliveries. An
    unreachable database fails them all.

    `together` (the way a batch is tried first): the workers the rounds would each hold and read are
    held and read at once (`offers.hold_for`), the rounds run one after the other in the batch's
    transaction, then their new requests are moved to offered in one UPDATE, and the offers of every
    round, their audit events and their SMS are written, each kind in one INSERT. Should anything
    fail, `_NotTogether` is raised for the caller to roll the batch back and run it again apart: each
    round with its writes in a savepoint of its own, so that a round that fails is rolled back alone,
    logged and put in `batch.failed`, and the others go on."""
    ctx = context.current()
    rules = ctx.settings.dispatch
    requests = session.exec(select(ServiceRequest).where(col(ServiceRequest.id).in_(request_ids))).all()
    loaded = {request.id: request for request in requests if request.status in offers.DISPATCHABLE}
    due = {request_id: loaded[request_id] for request_id in request_ids if request_id in loaded}  # in turn
    batch.outcomes |= {request_id: "nothing to do" for request_id in request_ids if request_id not in due}
    found = _candidates_of(session, list(due.values()), moment)
    valid_days = ctx.settings.workers_quality.police_verification_valid_days

    def round_of(request_id: int, request: ServiceRequest, held: offers.Together | None) -> offers.Dispatched:
        return offers.next_offers(
            session,
            request_id,
            found[request_id],
            rules,
            moment,
            first_choice=rework.first_choice(session, request, ctx.settings.rework),
            police_valid_days=valid_days,
            together=held,
        )

    rounds: dict[int, tuple[offers.Dispatched, list[Delivery]]] = {}
    if not together:
        for request_id, request in due.items():
            try:
                with session.begin_nested():
                    result = round_of(request_id, request, None)
                    rounds[request_id] = (result, _deliveries(session, [result], moment).get(request_id, []))
            except UNREACHABLE:
                raise
            except Exception as exc:
                log.exception("the dispatch of request %s failed; the sweeper dispatches it again", request_id)
                batch.failed[request_id] = exc
        return rounds
    made: dict[int, offers.Dispatched] = {}
    try:
        held = offers.hold_for(session, rules, [(request, found[request_id]) for request_id, request in due.items()])
        for request_id, request in due.items():
            made[request_id] = round_of(request_id, request, held)
        for request_id in offers.record_offers(session, list(made.values()), moment):
            made[request_id] = offers.Dispatched(reason="changed meanwhile")
        written = _deliveries(session, list(made.values()), moment)
    except UNREACHABLE:
        raise
    except Exception as exc:
        raise _NotTogether from exc
    return {request_id: (result, written.get(request_id, [])) for request_id, result in made.items()}


class _NotTogether(Exception):
    """A batch tried together failed: it runs again, each round alone."""


@dataclass(frozen=True)
class Delivery:
    """An offer made by a round, to be sent by the job that made it: by the SMS recorded with it (its
    first try claimed at `made_at`), or by a call to `phone`."""

    offer_id: int
    expires_at: datetime
    phone: str
    sms: messages.Outgoing | None
    made_at: datetime


def _deliveries(session: Session, rounds: Sequence[offers.Dispatched], moment: datetime) -> dict[int, list[Delivery]]:
    """Each new offer's delivery, by request; an SMS offer's text recorded, its first try claimed, in
    the rounds' transaction (one INSERT for them all). A message sent must be in the database first,
    so that transaction commits waiting for the disk (PostgreSQL's synchronous commit)."""
    settings = context.current().settings
    claims: dict[int, dict[str, Any]] = {}  # by offer
    for result in rounds:
        for offer, worker in zip(result.offers, result.workers, strict=True):
            if offer.channel is OfferChannel.SMS:
                request = result.request
                assert request is not None
                template, values = _offer_text(session, request, worker)
                claims[offer.id or 0] = messages.claimed_row(
                    settings,
                    worker.phone,
                    template,
                    worker.language,
                    values,
                    moment,
                    request_id=request.id,
                    worker_id=worker.id,
                )
    texts = dict(zip(claims, messages.record_claimed(session, list(claims.values())), strict=True))
    found: dict[int, list[Delivery]] = {}
    for result in rounds:
        for offer, worker in zip(result.offers, result.workers, strict=True):
            assert offer.id is not None
            assert offer.expires_at is not None
            found.setdefault(offer.request_id, []).append(
                Delivery(offer.id, offer.expires_at, worker.phone, texts.get(offer.id), moment)
            )
    return found


def _deliver(delivery: Delivery) -> str | None:
    """Send one offer made by this job: its SMS, claimed with the offer (unless `SEND_CLAIMED_WITHIN` has
    passed: the sweeper's then), or a call; undeliverable means unanswered (or tried again, as
    `send_offer` tries). The SMS's sid, for the caller to record."""
    try:
        if delivery.sms is None:
            _ring_for_offer(delivery.phone, delivery.offer_id)
        elif now() - delivery.made_at >= SEND_CLAIMED_WITHIN:
            log.warning("offer %s: its SMS %s, claimed long ago, is the sweeper's", delivery.offer_id, delivery.sms.id)
        else:
            return _hand_over(delivery.sms)
    except GatewayError as exc:
        _undelivered(delivery.offer_id, 1, exc, retryable=exc.retryable)
    except Exception as exc:  # not the platform's answer: trying the same send again cannot help
        _undelivered(delivery.offer_id, 1, exc, retryable=False)
    return None


def _index_rules() -> dict[str, Any]:
    """What the worker index needs to know of the settings and the day: whom it may hold."""
    settings = context.current().settings
    return {
        "all_skills": settings.service_codes,
        "allow_parallel_jobs": settings.dispatch.allow_parallel_jobs,
        "today": now().date(),
        "police_valid_days": settings.workers_quality.police_verification_valid_days,
    }


def _ensure_index() -> None:
    """Redis came back without its data (restarted without persistence, or flushed): build the
    worker index from the database before matching, or every request would escalate for want of
    workers until the next scheduled rebuild. One job builds it; the others wait for it."""
    if not geoindex.is_built(context.current().redis):
        rebuild_index(only_if_missing=True)


def _candidates_of(
    session: Session, requests: Sequence[ServiceRequest], moment: datetime
) -> dict[int, list[Candidate]]:
    """The workers near each request, ranked (by Redis, next to the index, for the whole batch in one
    round trip), as many of the ranking as the request's round can look at; with parallel jobs
    allowed, those free at the visit's time first (without, a worker with a job in hand is not offered
    another at all): `rank` again, which keeps the order among the free and among the busy."""
    ctx = context.current()
    rules = ctx.settings.dispatch
    radius = geoindex.search_radius(ctx.redis, rules.default_radius_km)
    placed = [r for r in requests if r.latitude is not None and r.longitude is not None]
    searches = [
        geoindex.Search(
            r.service_code,
            r.latitude or 0.0,
            r.longitude or 0.0,
            max(radius, r.round_radius_km or 0.0),  # an agent widened this round
            r.round_radius_km,
            offers.candidates_wanted(rules, r),
        )
        for r in placed
    ]
    found = geoindex.ranked_many(ctx.redis, searches, moment.date(), default_radius_km=rules.default_radius_km)
    ranked: dict[int, list[Candidate]] = {request.id or 0: [] for request in requests}
    for request, candidates in zip(placed, found, strict=True):
        if rules.allow_parallel_jobs:
            busy = offers.busy_then(session, request, [c.worker_id for c in candidates], moment)
            reach = request.round_radius_km
            candidates = rank(candidates, default_radius_km=rules.default_radius_km, reach_km=reach, busy_then=busy)
        ranked[request.id or 0] = candidates
    return ranked


def send_offer(offer_id: int, attempt: int = 1) -> str:
    """Tell the worker about the job again, by SMS or by a call (a try after a refusal; the first is
    the dispatch job's); undeliverable means unanswered."""
    ctx = context.current()
    with Session(ctx.engine) as session:
        offer = session.get(Offer, offer_id)
        if offer is None or offer.status is not OfferStatus.PENDING:
            return "offer closed"
        worker = session.get(Worker, offer.worker_id)
        request = session.get(ServiceRequest, offer.request_id)
        assert worker is not None
        assert request is not None
        template, values = _offer_text(session, request, worker) if offer.channel is OfferChannel.SMS else ("", {})
    try:
        if offer.channel is OfferChannel.VOICE:
            _ring_for_offer(worker.phone, offer_id)
        else:
            text_sms(worker.phone, template, worker.language, values, request_id=request.id, worker_id=worker.id)
    except GatewayError as exc:
        return _undelivered(offer_id, attempt, exc, retryable=exc.retryable)
    except Exception as exc:  # not the platform's answer: trying the same send again cannot help
        return _undelivered(offer_id, attempt, exc, retryable=False)
    return f"sent by {offer.channel.value}"


def _ring_for_offer(phone: str, offer_id: int) -> None:
    ctx = context.current()
    ctx.telephony.place_call(
        phone,
        webhook_url(ctx.settings, "/voice"),
        status_callback=webhook_url(ctx.settings, f"/voice/status?offer={offer_id}"),
    )


def _offer_text(session: Session, request: ServiceRequest, worker: Worker) -> tuple[str, dict[str, str]]:
    """The offer's template and values, in the worker's language; a rework's names the job it visits
    again (its number)."""
    values = {
        "number": request.number,
        "service": _service(request, worker.language),
        "locality": _locality(request, worker.language),
        "slot": _when(request, worker.language),
    }
    if request.rework_of_id is None:
        return "offer", values
    original = session.get(ServiceRequest, request.rework_of_id)
    return "offer_rework", values | ({"original": original.number} if original else {})


def _undelivered(offer_id: int, attempt: int, error: Exception, *, retryable: bool) -> str:
    ctx = context.current()
    if retryable and attempt <= len(OFFER_SEND_BACKOFF):
        delay = timedelta(seconds=OFFER_SEND_BACKOFF[attempt - 1])
        enqueue.offer_resent(ctx.redis, offer_id, attempt + 1, delay)
        return f"send failed ({error}); retrying in {delay.seconds} s"
    log.warning("offer %s could not be delivered: %s", offer_id, error)
    return expire_offer(offer_id, reason="could not be delivered", force=True)


def expire_due() -> str:
    """Expire the next offers whose time is up (`enqueue.EXPIRED.batch` at most), each as its own
    `expire_offer` would. One that fails is logged and left to the sweeper, and the others go on; with
    the database unreachable the rest of the batch is left to it. The job fails if any did."""
    offer_ids = enqueue.EXPIRED.take(context.current().redis)
    failed = []
    for offer_id in offer_ids:
        try:
            expire_offer(offer_id)
        except UNREACHABLE:
            log.exception("the database is unreachable: offers %s are left for the sweeper", offer_ids)
            raise
        except Exception:
            log.exception("the expiry of offer %s failed; the sweeper expires it", offer_id)
            failed.append(offer_id)
    if failed:
        raise ExpiryFailed(f"the expiry of offers {failed} failed (of {offer_ids})")
    return f"looked at {len(offer_ids)}"


class ExpiryFailed(Exception):
    """Some offers of an expiry job's batch could not be expired (each logged with its error)."""


def expire_offer(offer_id: int, reason: str = "no answer in time", force: bool = False) -> str:
    """The worker did not answer in time: the request goes to the next candidate."""
    ctx = context.current()
    moment = now()
    with session_scope(ctx.engine) as session:
        offer = session.get(Offer, offer_id)
        if offer is None or offer.status is not OfferStatus.PENDING:
            return "already answered"
        if not force and offer.expires_at is not None and offer.expires_at > moment:
            # the expiries due are moved in whole seconds, and a clock may run ahead of the database's
            enqueue.offer_expiry(ctx.redis, offer_id, offer.expires_at)
            return "not due yet"
        offers.expire(session, offer_id, moment, reason)
        request_id = offer.request_id
    enqueue_dispatch(request_id)
    return "expired"


# -- after an answer -------------------------------------------------------------------------------


# Whether the worker a request is assigned to has its notice recorded (sent or not): one test, so the
# notice job and the sweeper that redoes it agree on it.
TOLD = sa.exists().where(
    col(SmsLog.request_id) == col(ServiceRequest.id),
    col(SmsLog.worker_id) == col(ServiceRequest.worker_id),
    col(SmsLog.template) == "assigned_worker",
)


def notify_assigned(request_id: int) -> str:
    """Both sides learn the job: the citizen the worker's name and the code, the worker the service and
    the place; neither the other's number (they reach each other through the helpline).

    Once per worker assigned: RQ runs a job queued twice twice (the sweeper queues this one again when
    the first waits past its grace), so both messages are recorded first, under the request's row
    lock, and a second run finds the worker's and sends nothing. A message recorded and not sent (the
    job died between) is the sweeper's to send."""
    ctx = context.current()
    with session_scope(ctx.engine) as session:
        request = session.get(ServiceRequest, request_id, with_for_update=True)
        if request is None or request.status is not RequestStatus.ASSIGNED or request.worker_id is None:
            return "not assigned"
        if session.scalar(sa.select(TOLD).where(col(ServiceRequest.id) == request_id)):
            return "already told"
        worker = session.get(Worker, request.worker_id)
        caller = session.get(Caller, request.caller_id) if request.caller_id else None
        assert worker is not None
        geoindex.update(
            ctx.redis,
            session,
            request.worker_id,
            **_index_rules(),
        )
        messages = []
        if caller is not None and phones.indian_mobile(caller.phone):
            messages.append(
                record_sms(
                    session,
                    caller.phone,
                    "assigned_citizen",
                    request.language,
                    {"number": request.number, "worker": worker.name, "code": request.completion_code or ""},
                    request_id=request_id,
                )
            )
        messages.append(
            record_sms(
                session,
                worker.phone,
                "assigned_worker",
                worker.language,
                {
                    "number": request.number,
                    "service": _service(request, worker.language),
                    "locality": _locality(request, worker.language),
                    "slot": _when(request, worker.language),
                },
                request_id=request_id,
                worker_id=worker.id,
            )
        )
    geoindex.count_job(ctx.redis, worker.id or 0, now().date())
    for sms_id in messages:
        _try_send(sms_id, request_id)
    return "notified"


def _try_sms(to: str, template: str, language: str, values: Mapping[str, str], **links: int | None) -> None:
    """One failed SMS must not stop the next: it stays in SmsLog as send_failed, for an agent to see."""
    try:
        text_sms(to, template, language, values, **links)
    except Exception as exc:
        about = f"request {links['request_id']}" if links.get("request_id") else "no request"
        log.warning("%s SMS about %s not sent: %s", template, about, type(exc).__name__)


def _try_send(sms_id: int, request_id: int) -> None:
    """`_try_sms` for a message already recorded."""
    try:
        send_sms(sms_id)
    except Exception as exc:
        log.warning("SMS %s of request %s not sent: %s", sms_id, request_id, type(exc).__name__)


def after_completion(request_id: int) -> str:
    """The worker is free again; the citizen is rung to rate the job (or texted, if that fails)."""
    ctx = context.current()
    with Session(ctx.engine) as session:
        request = session.get(ServiceRequest, request_id)
        if request is None or request.worker_id is None:
            return "no request"
        geoindex.update(
            ctx.redis,
            session,
            request.worker_id,
            **_index_rules(),
        )
        caller = session.get(Caller, request.caller_id) if request.caller_id else None
    if caller is None:
        return "no citizen to ask"
    try:
        ctx.telephony.place_call(
            caller.phone,
            webhook_url(ctx.settings, f"/voice?flow=feedback&request={request_id}"),
            status_callback=webhook_url(ctx.settings, f"/voice/status?feedback={request_id}"),
        )
    except Exception as exc:
        log.warning("feedback call for request %s failed (%s); texting instead", request_id, exc)
        return feedback_sms(request_id)
    return "feedback call placed"


def feedback_sms(request_id: int) -> str:
    """The SMS fallback of the feedback call: reply 1 to 5."""
    ctx = context.current()
    with Session(ctx.engine) as session:
        request = session.get(ServiceRequest, request_id)
        caller = session.get(Caller, request.caller_id) if request and request.caller_id else None
        asked = session.exec(
            select(SmsLog.id).where(SmsLog.request_id == request_id, SmsLog.template == "feedback")
        ).first()
    if request is None or caller is None or request.status is not RequestStatus.COMPLETED or asked is not None:
        return "nothing to ask"
    if not phones.indian_mobile(caller.phone):
        return "the citizen's phone cannot get SMS"
    text_sms(caller.phone, "feedback", request.language, {"number": request.number}, request_id=request.id)
    return "feedback texted"


def ring_agent(user_id: int, desk_phone: str) -> str:
    """An agent took the next caller on the console: ring their desk phone, which then bridges
    them with the caller (the /voice/agent answer of the platform's webhooks)."""
    ctx = context.current()
    sid = ctx.telephony.place_call(
        desk_phone,
        webhook_url(ctx.settings, f"/voice/agent?user={user_id}"),
        status_callback=webhook_url(ctx.settings, f"/voice/status?agent={user_id}"),  # its end: the agent's wrap-up
        timeout=20,
    )
    return f"ringing the agent: {sid}"


def ring_supervisor(session_id: str, phone: str) -> str:
    """A supervisor asked, on the wall of agents, to monitor an agent's call: ring their phone, which
    then joins the caller's room in their mode (the /voice/monitor answer); its end ends the session."""
    ctx = context.current()
    sid = ctx.telephony.place_call(
        phone,
        webhook_url(ctx.settings, f"/voice/monitor?session={session_id}"),
        status_callback=webhook_url(ctx.settings, f"/voice/monitor/status?session={session_id}"),
        timeout=20,
    )
    return f"ringing the supervisor: {sid}"


def climb_ladder(request_id: int, from_level: int) -> str:
    """A request past its rung's deadline goes up one (compare-and-set on the level: a second run
    finds it moved), and the people of the new rung are told by SMS, each message recorded in the
    climb's transaction and sent after it (a lost send is the sweeper's)."""
    ctx = context.current()
    rungs = ctx.settings.escalation
    with session_scope(ctx.engine) as session:
        climbed = ladder.climb(session, request_id, from_level, rungs, now())
        if climbed is None:
            return "nothing to climb"
        request = session.get(ServiceRequest, request_id)
        assert request is not None
        level = rungs.level(from_level + 1)
        told = [
            record_sms(
                session,
                person.phone,
                "escalated_to_officer",
                person.language or "hi",
                {"number": request.number, "level": level.name(person.language or "hi")},
                request_id=request_id,
            )
            for person in ladder.people_of(session, level, request)
            if person.phone
        ]
    for sms_id in told:
        _try_send(sms_id, request_id)
    return f"up to level {from_level + 1} ({climbed.late.value}); {len(told)} told by SMS"


def ring_officer(call_id: int) -> str:
    """An officer asked to call a citizen: ring the officer's own phone; picked up, the helpline
    puts them through to the citizen, recorded (ivr/officer.py). A call that cannot be placed ends failed."""
    ctx = context.current()
    with Session(ctx.engine) as session:
        call = session.get(CitizenCall, call_id)
        officer = session.get(User, call.user_id) if call is not None else None
    if call is None or call.status is not CitizenCallStatus.PLACED or officer is None or not officer.phone:
        return "nothing to ring"
    try:
        sid = ctx.telephony.place_call(
            officer.phone,
            webhook_url(ctx.settings, f"/voice/officer?call={call_id}"),
            status_callback=webhook_url(ctx.settings, f"/voice/status?citizen_call={call_id}"),
            timeout=citizen_calls.RING_OFFICER_S,
        )
    except GatewayError as exc:
        with session_scope(ctx.engine) as session:
            citizen_calls.ended(session, call_id, False, 0, "failed", now())
        return f"the officer's phone could not be rung: {exc}"
    return f"ringing the officer: {sid}"


def ring_agent_for_callback(attempt_id: int) -> str:
    """An agent's try at a callback: ring the agent's own phone; picked up, the helpline puts them
    through to the caller (ivr/callback_call.py). A call that cannot be placed leaves the try void."""
    ctx = context.current()
    with Session(ctx.engine) as session:
        attempt = session.get(CallbackAttempt, attempt_id)
        agent = session.get(User, attempt.user_id) if attempt is not None else None
    if attempt is None or attempt.dial_status is not None or agent is None or not agent.phone:
        return "nothing to ring"
    try:
        sid = ctx.telephony.place_call(
            agent.phone,
            webhook_url(ctx.settings, f"/voice/callback?attempt={attempt_id}"),
            status_callback=webhook_url(ctx.settings, f"/voice/callback/status?attempt={attempt_id}"),
            timeout=callbacks.RING_AGENT_S,
        )
    except GatewayError as exc:
        with session_scope(ctx.engine) as session:
            callbacks.dial_ended(session, attempt_id, callbacks.AGENT_UNANSWERED)
        return f"the agent's phone could not be rung: {exc}"
    return f"ringing the agent: {sid}"


def job_cancelled(request_id: int, worker_id: int) -> str:
    """A job a worker had taken, or been offered, was cancelled: the worker is told not to go, and is
    free again."""
    ctx = context.current()
    with Session(ctx.engine) as session:
        request, worker = session.get(ServiceRequest, request_id), session.get(Worker, worker_id)
        if request is None or worker is None or request.status is not RequestStatus.CANCELLED:
            return "nothing to tell"
        geoindex.update(
            ctx.redis,
            session,
            worker_id,
            **_index_rules(),
        )
    _try_sms(
        worker.phone,
        "job_cancelled",
        worker.language,
        {"number": request.number},
        request_id=request.id,
        worker_id=worker.id,
    )
    return "worker told"


def job_closed(request_id: int, worker_id: int) -> str:
    """An officer closed a request that climbed the ladder while a worker had it in hand: the worker
    is told they need not go, and is free again."""
    ctx = context.current()
    with Session(ctx.engine) as session:
        request, worker = session.get(ServiceRequest, request_id), session.get(Worker, worker_id)
        if request is None or worker is None or request.status is not RequestStatus.CLOSED:
            return "nothing to tell"
        told = session.exec(
            select(SmsLog.id).where(
                SmsLog.request_id == request_id, SmsLog.worker_id == worker_id, SmsLog.template == "job_closed"
            )
        ).first()
        geoindex.update(
            ctx.redis,
            session,
            worker_id,
            all_skills=ctx.settings.service_codes,
            allow_parallel_jobs=ctx.settings.dispatch.allow_parallel_jobs,
        )
    if told is not None:
        return "told before"
    _try_sms(
        worker.phone,
        "job_closed",
        worker.language,
        {"number": request.number},
        request_id=request_id,
        worker_id=worker_id,
    )
    return "worker told"


def job_moved(request_id: int, worker_id: int) -> str:
    """A job moved to another slot: the worker who has it, or holds its open offer, is told the new time
    (and that "2 NUMBER" gives it back, or declines the offer). Not when it is no longer theirs, or
    their offer no longer open, by the time this runs."""
    ctx = context.current()
    with Session(ctx.engine) as session:
        request, worker = session.get(ServiceRequest, request_id), session.get(Worker, worker_id)
        asked = session.exec(
            select(Offer.id).where(
                Offer.request_id == request_id, Offer.worker_id == worker_id, Offer.status == OfferStatus.PENDING
            )
        ).first()
    if request is None or worker is None:
        return "nothing to tell"
    theirs = request.worker_id == worker_id and request.status is RequestStatus.ASSIGNED
    if not theirs and asked is None:
        return "nothing to tell"
    if request.slot_starts_at is None or request.slot_ends_at is None:
        return "no slot"
    slot = slots.describe(ctx.settings, request.slot_starts_at, request.slot_ends_at, worker.language, now())
    values = {"number": request.number, "slot": slot}
    _try_sms(worker.phone, "job_moved", worker.language, values, request_id=request.id, worker_id=worker.id)
    return "worker told"


def worker_busy(offer_id: int) -> str:
    """A worker said yes on the phone to a job with another in hand (the offer closed as busy): the
    text names the job to finish first, as a texted yes gets."""
    ctx = context.current()
    with Session(ctx.engine) as session:
        offer = session.get(Offer, offer_id)
        worker = session.get(Worker, offer.worker_id) if offer is not None else None
        in_hand = offers.job_in_hand(session, offer.worker_id, but_not=offer.request_id) if offer else None
    if offer is None or worker is None or in_hand is None:
        return "nothing to tell"
    _try_sms(
        worker.phone,
        "offer_busy",
        worker.language,
        {"number": in_hand.number},
        request_id=offer.request_id,
        worker_id=worker.id,
    )
    return "worker told"


def late_visit(request_id: int) -> str:
    """A visit not started in time (dispatch/visit.py): its agency told once, or, past the grace, the
    job taken back from its worker (told by SMS, free again) and offered again. Twice is once."""
    ctx = context.current()
    with session_scope(ctx.engine) as session:
        late = visit.handle_late(session, ctx.settings, request_id, now())
    if late.dispatch is not None:
        enqueue.dispatch_request(ctx.redis, late.dispatch)
    if late.freed_worker is not None:
        enqueue.reindex_worker(ctx.redis, late.freed_worker)
    for sms_id in late.sms:
        _try_send(sms_id, request_id)
    return late.what


def reindex_worker(worker_id: int) -> str:
    """Bring one worker's GEO index entries in step after a change to them."""
    ctx = context.current()
    with Session(ctx.engine) as session:
        geoindex.update(
            ctx.redis,
            session,
            worker_id,
            **_index_rules(),
        )
    return "indexed"


def receive_sms(message_sid: str, sender: str, body: str) -> str:
    """A message that came in while the database was unreachable: record it now, then handle it."""
    ctx = context.current()
    sms_id = messages.record_inbound(ctx.engine, message_sid, sender, body)
    if sms_id is None:
        return "recorded before"
    enqueue.handle_sms(ctx.redis, sms_id)
    return "recorded"


def record_delivery(message_sid: str, status: str, error_code: str, sms_id: int | None = None) -> str:
    """A delivery report that came while the database was unreachable: an undelivered offer moves on."""
    engine = context.current().engine
    offer_id = messages.record_delivery(engine, message_sid, status, error_code, now(), sms_id=sms_id)
    if offer_id is None:
        return "kept"
    return expire_offer(offer_id, reason="the SMS could not be delivered", force=True)


def handle_sms(sms_log_id: int) -> str:
    """Act on an SMS that came in (once, whoever runs this first), then answer and follow up."""
    ctx = context.current()
    with session_scope(ctx.engine) as session:
        claimed = session.execute(
            sa.update(SmsLog)
            .where(col(SmsLog.id) == sms_log_id, col(SmsLog.status) == SmsHandling.RECEIVED)
            .values(status=SmsHandling.HANDLING, updated_at=now())
        ).rowcount  # type: ignore[attr-defined]
        sms = session.get(SmsLog, sms_log_id)
    if not claimed or sms is None or sms.from_number is None:
        return "already handled"
    try:
        outcome = inbox.handle(
            ctx.engine,
            sms.from_number,
            sms.body,
            now(),
            allow_parallel_jobs=ctx.settings.dispatch.allow_parallel_jobs,
            rework_rules=ctx.settings.rework,
            standards=ctx.settings.workers_quality,
            settings=ctx.settings,
            rules=ctx.settings.changes,
        )
        _follow_up(sms.from_number, outcome)
    except UNREACHABLE:
        # The database went away mid-way (what it was doing rolled back): not the message's fault. It goes
        # back to `received`, for the sweeper to hand to a job again.
        _set_sms_status(sms_log_id, SmsHandling.RECEIVED)
        raise
    except Exception:
        _set_sms_status(sms_log_id, SmsHandling.FAILED)  # kept, for an agent to read: the message is not lost
        raise
    _set_sms_status(sms_log_id, SmsHandling.HANDLED)
    return "handled"


def _follow_up(sender: str, outcome: inbox.Outcome) -> None:
    """Answer the sender and queue what the message calls for; the database already holds the change."""
    connection = context.current().redis
    if outcome.assigned is not None:
        enqueue.notify_assigned(connection, outcome.assigned)
    if outcome.redispatch is not None:
        enqueue.dispatch_request(connection, outcome.redispatch)
    if outcome.completed is not None:
        enqueue.after_completion(connection, outcome.completed)
    if outcome.worker_changed is not None:
        enqueue.reindex_worker(connection, outcome.worker_changed)
    enqueue.send_many_sms(connection, outcome.recorded)
    if outcome.changed is not None:
        changes.tell(connection, outcome.changed)
    for reply in outcome.replies:
        _try_sms(sender, reply.template, outcome.language, reply.values, request_id=reply.request_id)


def _set_sms_status(sms_log_id: int, status: SmsHandling) -> None:
    with session_scope(context.current().engine) as session:
        session.execute(sa.update(SmsLog).where(col(SmsLog.id) == sms_log_id).values(status=status, updated_at=now()))


# -- SMS ------------------------------------------------------------------------------------------


def text_sms(
    to: str,
    template: str,
    language: str,
    values: Mapping[str, str],
    *,
    request_id: int | None = None,
    worker_id: int | None = None,
) -> str:
    """Record an SMS from a template, fitted to two segments, then send it now."""
    with session_scope(context.current().engine) as session:
        sms_id = record_sms(session, to, template, language, values, request_id=request_id, worker_id=worker_id)
    sid = send_sms(sms_id)
    return sid or ""


def record_sms(
    session: Session,
    to: str,
    template: str,
    language: str,
    values: Mapping[str, str],
    *,
    request_id: int | None = None,
    worker_id: int | None = None,
) -> int:
    """An SMS from a template, fitted to two segments, recorded as pending; its id."""
    settings = context.current().settings
    return messages.record_outbound(
        session, settings, to, template, language, values, request_id=request_id, worker_id=worker_id
    )


def send_due_sms() -> str:
    """Send the next SMS due (`enqueue.TEXTS.batch` at most), each as `send_sms` sends one. One the
    platform refused (its try recorded) is tried again by a job of its own (`enqueue.retry_sms`), on the
    SMS's retry schedule; with the database unreachable, the job fails, and what it had not sent yet is
    the sweeper's (pending, never tried), as a lost job's was."""
    ctx = context.current()
    sms_ids = enqueue.TEXTS.take(ctx.redis)
    refused = []
    for place, sms_id in enumerate(sms_ids):
        try:
            send_sms(sms_id)
        except UNREACHABLE:
            log.exception("the database is unreachable: SMS %s are left for the sweeper", sms_ids[place:])
            raise
        except Exception:
            log.exception("SMS %s was not sent; a job of its own tries it again", sms_id)
            refused.append(sms_id)
            enqueue.retry_sms(ctx.redis, sms_id)
    return f"sent {len(sms_ids) - len(refused)} of {len(sms_ids)}"


def send_sms(sms_log_id: int) -> str | None:
    """Send one SMS recorded as pending, or refused before and due again; record Twilio's sid. Sending
    twice is refused; a message whose content is moot is not sent. A refusal is recorded (to be tried
    again, or given up on) and raised, for RQ's retry and the caller."""
    ctx = context.current()
    with Session(ctx.engine) as session:
        sms = session.get(SmsLog, sms_log_id)
        if sms is None or sms.message_sid is not None or sms.to_number is None or sms.status not in messages.SENDABLE:
            return None
        if sms.attempts and messages.moot(session, sms):
            sms.next_attempt_at = None
            session.add(sms)
            session.commit()
            return None
        outgoing = messages.outgoing(sms)
        if not messages.claim_attempt(session, sms, now()):
            return None  # another job is sending it
    return _send_claimed(outgoing)


def _send_claimed(sms: messages.Outgoing) -> str:
    """Send an SMS whose try this job claimed; record Twilio's sid, or the refusal (and raise it)."""
    sid = _hand_over(sms)
    _record_sent(context.current().engine, [(sms.id, sid)], now())
    return sid


def _hand_over(sms: messages.Outgoing) -> str:
    """Send an SMS whose try this job claimed; Twilio's sid, for the caller to record, or the refusal
    recorded (and raised)."""
    ctx = context.current()
    callback = webhook_url(ctx.settings, f"/sms/status?sms={sms.id}")
    template = ctx.settings.sms.templates.get(sms.template)
    try:
        sid = ctx.telephony.send_sms(
            sms.to, sms.body, status_callback=callback, dlt_template_id=template.dlt_template_id if template else None
        )
    except Exception as exc:
        retryable = isinstance(exc, GatewayError) and exc.retryable
        code = str(exc.code or "")[:10] or None if isinstance(exc, GatewayError) else None
        with Session(ctx.engine) as session:
            status = messages.failed_attempt(session, sms.id, retryable=retryable, error_code=code, now=now())
            if status is SmsDelivery.NOT_SENT:
                row = session.get(SmsLog, sms.id)
                log.warning(
                    "%s SMS %s about %s could not be sent after %s tries; an agent sees it on the request",
                    sms.template,
                    sms.id,
                    f"request {row.request_id}" if row and row.request_id else "no request",
                    row.attempts if row else "?",
                )
        raise
    return sid


def _record_sent(engine: sa.Engine, sent: Sequence[tuple[int, str]], at: datetime) -> None:
    """Twilio took the messages: their sids are recorded, in one transaction, on a new connection if the
    one in use was cut meanwhile. A message left unrecorded would look unsent, and be sent again. The
    platform's status report may have come first and recorded one (with a later status, kept)."""
    rows = [{"sms": sms_log_id, "sid": sid, "at": at} for sms_log_id, sid in sent]
    for attempt in range(1, RECORD_SENT_TRIES + 1):
        try:
            with engine.begin() as connection:
                connection.execute(SENT, rows)
            return
        except UNREACHABLE:
            if attempt == RECORD_SENT_TRIES:
                raise
            ids = [sms_log_id for sms_log_id, _ in sent]
            log.warning("SMS %s were sent, but recording them failed; trying again on a new connection", ids)
            time.sleep(RECORD_SENT_PAUSE_S * attempt)


SENT = (
    sa.update(SmsLog)
    .where(col(SmsLog.id) == sa.bindparam("sms"), col(SmsLog.message_sid).is_(None))
    .values(
        message_sid=sa.bindparam("sid"),
        status=SmsDelivery.QUEUED,
        error_code=None,
        updated_at=sa.bindparam("at"),
        next_attempt_at=None,
    )
)  # built once: a dispatch job records the sids of the offers it sent, in one executemany


def _service(request: ServiceRequest, language: str) -> str:
    return context.current().settings.service(request.service_code).name(language)


def _when(request: ServiceRequest, language: str) -> str:
    """The visit's slot in words ("tomorrow evening (16:00-20:00)"), or "as soon as possible"."""
    settings = context.current().settings
    return slots.when(settings, request.slot_starts_at, request.slot_ends_at, language, now())


def _locality(request: ServiceRequest, language: str) -> str:
    """The district in the reader's language, and the PIN code."""
    return f"{pincodes.display_name(request.district, language)} {request.pincode}"


# -- the sweeper ----------------------------------------------------------------------------------


def sweep() -> dict[str, int]:
    """Find work a lost job left undone (Redis restarted, a worker died) and queue it again."""
    ctx = context.current()
    moment = now()
    with Session(ctx.engine) as session:
        round_started = sa.func.coalesce(col(ServiceRequest.round_started_at), col(ServiceRequest.created_at))
        stuck_new = session.exec(
            select(ServiceRequest.id).where(
                ServiceRequest.status == RequestStatus.NEW, round_started < moment - NEW_REQUEST_GRACE
            )
        ).all()
        open_offer = sa.exists().where(
            col(Offer.request_id) == col(ServiceRequest.id), col(Offer.status) == OfferStatus.PENDING
        )
        unoffered = session.exec(
            select(ServiceRequest.id).where(
                ServiceRequest.status == RequestStatus.OFFERED,
                col(ServiceRequest.updated_at) < moment - NEW_REQUEST_GRACE,
                ~open_offer,
            )
        ).all()
        undelivered = session.exec(select(Offer.id).where(_never_left(moment))).all()
        # An offer past its time is expired at the first sweep after it, its own job lost or not (a job
        # that comes too finds it answered): every offer closes within its timeout and one sweep interval.
        overdue = session.exec(
            select(Offer.id).where(
                Offer.status == OfferStatus.PENDING,
                col(Offer.expires_at) < moment,
                col(Offer.id).not_in(undelivered),
            )
        ).all()
        old_sms = col(SmsLog.created_at) < moment - NEW_REQUEST_GRACE
        # Never tried, or its try died before recording how it went (its time to retry is past); a message
        # found moot on a retry has no time to retry, and is left alone.
        tried_and_died = col(SmsLog.next_attempt_at) < moment - NEW_REQUEST_GRACE
        unsent = session.exec(
            select(SmsLog.id).where(
                SmsLog.status == SmsDelivery.PENDING, old_sms, sa.or_(col(SmsLog.attempts) == 0, tried_and_died)
            )
        ).all()
        refused = messages.due_again(session, moment - NEW_REQUEST_GRACE)  # RQ's own retry had its chance
        unread = session.exec(select(SmsLog.id).where(SmsLog.status == SmsHandling.RECEIVED, old_sms)).all()
        late = session.exec(select(ServiceRequest.id).where(visit.late_filter(ctx.settings, moment))).all()
        untold = session.exec(
            select(ServiceRequest.id).where(
                ServiceRequest.status == RequestStatus.ASSIGNED,
                col(ServiceRequest.assigned_at) < moment - NEW_REQUEST_GRACE,
                ~TOLD,
            )
        ).all()
        overdue_rungs = session.exec(
            select(ServiceRequest.id, ServiceRequest.escalation_level).where(
                ladder.overdue(ctx.settings.escalation, moment)
            )
        ).all()
    # new, or offered with every offer closed; and jobs for whatever waits for one (a lost job's ids)
    enqueue.dispatch_requests(ctx.redis, [int(request_id or 0) for request_id in [*stuck_new, *unoffered]])
    enqueue.jobs_for_what_waits(ctx.redis)
    for offer_id in overdue:
        enqueue.overdue_offer(ctx.redis, int(offer_id or 0))
    for offer_id in undelivered:  # its SMS never left and its next try was lost: the next worker, now
        enqueue.undelivered_offer(ctx.redis, int(offer_id or 0))
    abandoned = _reclaim_abandoned_sms(moment)
    for sms_id in [*unread, *abandoned]:
        enqueue.handle_sms(ctx.redis, int(sms_id or 0))
    for request_id in untold:  # assigned, but the job that tells both sides was lost
        enqueue.notify_assigned(ctx.redis, int(request_id or 0))
    enqueue.send_many_sms(ctx.redis, [int(sms_id or 0) for sms_id in [*unsent, *refused]])
    for request_id, level in overdue_rungs:  # past its rung's deadline: up the escalation ladder
        enqueue.climb_ladder(ctx.redis, int(request_id or 0), level)
    for request_id in late:  # a visit not started in time: flag it, or take it back
        enqueue.late_visit(ctx.redis, int(request_id or 0))
    return {
        "new_requests": len(stuck_new),
        "offered_without_open_offer": len(unoffered),
        "overdue_offers": len(overdue),
        "undelivered_offers": len(undelivered),
        "unsent_sms": len(unsent),
        "refused_sms_due": len(refused),
        "unread_sms": len(unread),
        "abandoned_sms": len(abandoned),
        "untold_assignments": len(untold),
        "escalation_climbs": len(overdue_rungs),
        "late_visits": len(late),
    }


def _never_left(moment: datetime) -> sa.ColumnElement[bool]:
    """A pending SMS offer whose every SMS Twilio refused, the last long enough ago that its next try
    (an RQ job, lost when Redis restarts empty) should have come: it is undelivered, not unanswered."""
    texts = (
        col(SmsLog.request_id) == col(Offer.request_id),
        col(SmsLog.worker_id) == col(Offer.worker_id),
        col(SmsLog.template).in_(messages.OFFERS),
        col(SmsLog.created_at) >= col(Offer.created_at),
    )
    refused = sa.exists().where(*texts, col(SmsLog.status) == SmsDelivery.SEND_FAILED)
    others = sa.exists().where(
        *texts,
        sa.or_(col(SmsLog.status) != SmsDelivery.SEND_FAILED, col(SmsLog.updated_at) >= moment - RESEND_LOST_AFTER),
    )
    return sa.and_(col(Offer.status) == OfferStatus.PENDING, col(Offer.channel) == OfferChannel.SMS, refused, ~others)


def _reclaim_abandoned_sms(moment: datetime) -> list[int]:
    """Messages whose handling job died with its worker (killed between claiming and finishing)
    go back to `received`, each by compare-and-set, so that they are handled after all."""
    ctx = context.current()
    cutoff = moment - ABANDONED_AFTER
    stuck = (col(SmsLog.status) == SmsHandling.HANDLING) & (col(SmsLog.updated_at) < cutoff)
    reclaimed = []
    with session_scope(ctx.engine) as session:
        for sms_id in session.exec(select(SmsLog.id).where(stuck)).all():
            back = sa.update(SmsLog).where(col(SmsLog.id) == sms_id, stuck)
            back = back.values(status=SmsHandling.RECEIVED, updated_at=moment)
            if session.execute(back).rowcount:  # type: ignore[attr-defined]
                log.warning("inbound SMS %s was abandoned mid-handling by a dead worker; handling it again", sms_id)
                reclaimed.append(int(sms_id or 0))
    return reclaimed


def rebuild_index(only_if_missing: bool = False) -> int:
    """Build the GEO index of available workers from the database. One rebuild at a time, whoever
    asks (the scheduler, the console, a dispatch finding it gone): two at once would each swap in,
    or delete, the fresh keys the other is building."""
    ctx = context.current()
    with ctx.redis.lock(INDEX_LOCK, timeout=300, blocking_timeout=120):
        if only_if_missing:
            if geoindex.is_built(ctx.redis):
                return 0  # another job built it while this one waited
            log.warning("the worker index is missing from Redis: rebuilding it from the database")
        with Session(ctx.engine) as session:
            return geoindex.rebuild(
                ctx.redis,
                session,
                **_index_rules(),
            )
