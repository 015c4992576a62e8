"""Notices to citizens by SMS, recorded and sent the way every SMS is (retried, its delivery kept):
the privacy notice's link for a first-time caller (DPDP Act 2023 s.5), a breach's notice (s.8(6)),
the notice before an erasure for lapsed purpose (DPDP Rules 2025: 48 hours before), the promise of a
callback to a caller who hung up in the queue."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlmodel import Session

from core import phones
from core.settings import Settings
from dispatch import enqueue, messages
from storage.db import autocommitted, rows_of, session_scope
from storage.models import Caller, Direction, SmsLog, utcnow

PRIVACY_TEMPLATE = "privacy_notice"
BREACH_TEMPLATE = "breach_notice"
ERASURE_TEMPLATE = "erasure_notice"  # not a contact: the retention job does not count it as the citizen seen
MISSED_CALL_TEMPLATE = "missed_call_callback"


def privacy_url(settings: Settings, language: str) -> str:
    """The full notice, in the caller's language (Hindi unless English)."""
    return f"{settings.public_url}/privacy" + ("?lang=en" if language == "en" else "")


def send_privacy_notice(
    engine: sa.Engine, connection: redis.Redis, settings: Settings, phone: str, language: str
) -> int | None:
    """The privacy notice's link by SMS; None when the number cannot get an SMS."""
    return send(
        engine, connection, settings, phone, PRIVACY_TEMPLATE, language, {"url": privacy_url(settings, language)}
    )


@dataclass(frozen=True)
class FirstCall:
    """What a first call's statement did: the privacy notice's SMS (None when the number cannot get
    one), and whether the caller is new to the helpline (no row had their number, and no erased row
    was given it back), so has no request of any kind."""

    sms_id: int | None
    new_caller: bool


def greet_first_call(
    engine: sa.Engine,
    connection: redis.Redis,
    settings: Settings,
    phone: str,
    language: str,
    now: datetime,
    erased_form: str | None,
) -> FirstCall:
    """PostgreSQL: a caller the helpline has not seen, remembered with their language (given back the
    number erased as `erased_form`, when a row has it and no other has the number) and sent the privacy
    notice's link, in one statement that commits as it runs (`_first_call`): the caller's language turn
    writes once, not two or three times. Its sending queued after. The caller is remembered all the same
    when the number cannot get an SMS."""
    to = phones.indian_mobile(phone)  # None: no SMS (`_first_call` records none without a number)
    told = {"url": privacy_url(settings, language)}
    row = messages.outbound_row(settings, phone, PRIVACY_TEMPLATE, language, told, request_id=None, worker_id=None)
    sent_at = utcnow()  # as every SMS row is stamped (the model's default), not the caller's clock
    values: dict[str, Any] = {
        "phone": phone,
        "erased_form": erased_form,
        "language": language,
        "now": now,
        **{f"s_{name}": row[name] for name in ("body", "template", "status")},
        "s_to_number": to,
        "s_direction": Direction.OUTBOUND,
        "s_attempts": 0,
        "s_created_at": sent_at,
        "s_updated_at": sent_at,
    }
    with autocommitted(engine) as db:
        [(sms_id, new_caller)] = rows_of(db, _first_call(), values)
    if sms_id is not None:
        enqueue.send_sms(connection, sms_id)
    return FirstCall(None if sms_id is None else int(sms_id), bool(new_caller))


@functools.cache
def _first_call() -> sa.Select[Any]:
    """The caller given back their erased number, or added, or found and updated (language, last seen);
    and the privacy notice's SMS recorded when `s_to_number` is a mobile. Each data-modifying WITH query
    runs once, on one snapshot, and all commit or fail together: the UPDATE of a given-back row and the
    upsert never meet (the upsert runs only when nothing was given back). One row: the SMS's id, or NULL;
    and whether the caller is new, read on the snapshot the statement started from (no row had the number)
    and with nothing given back. Built once: building it takes longer than running it."""
    from dispatch import retention  # here: retention sends its notices through this module

    caller: sa.Table = Caller.__table__  # type: ignore[attr-defined]
    text: sa.Table = SmsLog.__table__  # type: ignore[attr-defined]
    phone, erased = (sa.bindparam(name, type_=caller.c.phone.type) for name in ("phone", "erased_form"))
    language = sa.bindparam("language", type_=caller.c.language.type)
    now = sa.bindparam("now", type_=caller.c.last_seen_at.type)
    back = retention.number_given_back(phone, erased, language=language, last_seen_at=now)
    given_back = back.returning(caller.c.id).cte("given_back")
    seen = postgresql.insert(caller).from_select(
        ["phone", "language", "created_at", "last_seen_at"],
        sa.select(phone, language, now, now).where(~sa.exists(given_back.select())),
        include_defaults=False,
    )
    seen = seen.on_conflict_do_update(
        index_elements=["phone"], set_={"language": seen.excluded.language, "last_seen_at": seen.excluded.last_seen_at}
    )
    names = ["to_number", "body", "template", "status", "direction", "attempts", "created_at", "updated_at"]
    sent = [sa.bindparam(f"s_{name}", type_=text.c[name].type) for name in names]
    texted = (
        sa.insert(text)
        .from_select(names, sa.select(*sent).where(sent[0].is_not(None)), include_defaults=False)
        .returning(text.c.id)
        .cte("texted")
    )
    known = sa.exists().where(caller.c.phone == phone)
    new_caller = sa.and_(~known, ~sa.exists(given_back.select()))
    sms_id = sa.select(texted.c.id).scalar_subquery().label("sms_id")
    return sa.select(sms_id, new_caller.label("new_caller")).add_cte(seen.cte("seen"))


def send_breach_notice(
    engine: sa.Engine, connection: redis.Redis, settings: Settings, phone: str, language: str, occurred: str
) -> int | None:
    """A citizen whose data a breach touched is told, in their language (DPDP Act s.8(6))."""
    values = {"date": occurred, "url": privacy_url(settings, language)}
    return send(engine, connection, settings, phone, BREACH_TEMPLATE, language, values)


def send_erasure_notice(
    engine: sa.Engine, connection: redis.Redis, settings: Settings, caller_id: int, erase_on: str, now: datetime
) -> int | None:
    """A citizen told, in their language, that their number and details go on or after `erase_on`
    (DPDP Rules 2025); their row notes when, in the same commit. None when they cannot be told."""
    with session_scope(engine) as session:
        caller = session.get(Caller, caller_id)
        if caller is None:
            return None
        language = caller.language or "hi"
        sms_id = _record(session, settings, caller.phone, ERASURE_TEMPLATE, language, {"date": erase_on})
        if sms_id is None:
            return None
        caller.erasure_notice_at = now
        session.add(caller)
    enqueue.send_sms(connection, sms_id)
    return sms_id


def record_missed_call(session: Session, settings: Settings, phone: str, language: str) -> int | None:
    """The SMS telling a caller who hung up in the queue that the helpline rings them back, recorded
    in `session` with their callback; its sending is queued (`enqueue.send_sms`) after the commit."""
    return _record(session, settings, phone, MISSED_CALL_TEMPLATE, language, {})


def send(
    engine: sa.Engine,
    connection: redis.Redis,
    settings: Settings,
    phone: str,
    template: str,
    language: str,
    values: Mapping[str, str],
) -> int | None:
    """Record a citizen's SMS from a template, then queue its sending (after the commit); its id, or
    None when the number is not an Indian mobile. One row: its INSERT commits as it runs."""
    with autocommitted(engine) as db:
        sms_id = _record(db, settings, phone, template, language, values)
    if sms_id is not None:
        enqueue.send_sms(connection, sms_id)
    return sms_id


def _record(
    db: sa.Connection | Session,
    settings: Settings,
    phone: str,
    template: str,
    language: str,
    values: Mapping[str, str],
) -> int | None:
    """The SMS recorded as pending in the connection's (or session's) transaction, its sending queued by
    the caller after the commit; None when the number is not an Indian mobile."""
    to = phones.indian_mobile(phone)
    return None if to is None else messages.record_outbound(db, settings, to, template, language, values)
