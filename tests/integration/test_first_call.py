"""A caller's first language turn on PostgreSQL (`notice.greet_first_call`): the caller remembered in
their language (given back an erased number, added, or updated) and the privacy notice's SMS recorded
and queued, in one statement."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa
from sqlmodel import Session, col, select

from core.settings import Settings
from devtools.bench import roundtrips
from dispatch import enqueue, notice, retention
from storage.models import Caller, SmsLog
from tests.factories import make_settings

KEY = "a privacy key of the test's"
MOBILE, OTHER_MOBILE, LANDLINE = "+919812300011", "+919812300022", "+915222345678"
NOW = datetime(2026, 12, 6, 9, 30, tzinfo=UTC)


@pytest.fixture
def keyed(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, SEWAMITRA_PRIVACY_KEY=KEY)


def greet(
    postgres: sa.Engine, redis_client: redis.Redis, settings: Settings, phone: str, language: str
) -> notice.FirstCall:
    erased = retention.erased_form(phone, KEY)
    return notice.greet_first_call(postgres, redis_client, settings, phone, language, NOW, erased)


def callers(postgres: sa.Engine) -> list[Caller]:
    with Session(postgres) as session:
        return list(session.exec(select(Caller).order_by(col(Caller.id))).all())


def texts(postgres: sa.Engine) -> list[SmsLog]:
    with Session(postgres) as session:
        return list(session.exec(select(SmsLog).order_by(col(SmsLog.id))).all())


def test_a_new_caller_is_added_and_sent_the_notice_in_one_statement(
    postgres: sa.Engine, redis_client: redis.Redis, keyed: Settings
) -> None:
    with roundtrips.counted() as trips:
        first = greet(postgres, redis_client, keyed, MOBILE, "en")

    assert (trips.postgres, trips.statements) == (1, 1)
    assert first.new_caller  # no request to look for: the language turn reads nothing more
    [caller] = callers(postgres)
    assert (caller.phone, caller.language, caller.created_at, caller.last_seen_at) == (MOBILE, "en", NOW, NOW)
    [sms] = texts(postgres)
    assert sms.id == first.sms_id
    assert (sms.to_number, sms.template, sms.status, sms.attempts) == (MOBILE, "privacy_notice", "pending", 0)
    assert f"{keyed.public_url}/privacy?lang=en" in sms.body
    assert redis_client.lrange(enqueue.TEXTS.key, 0, -1) == [str(first.sms_id).encode()]


def test_a_known_caller_keeps_their_row_and_gets_the_new_language(
    postgres: sa.Engine, redis_client: redis.Redis, keyed: Settings
) -> None:
    first = NOW - timedelta(days=30)
    with Session(postgres) as session:
        session.add(Caller(phone=MOBILE, language=None, created_at=first, last_seen_at=first))
        session.commit()

    greeted = greet(postgres, redis_client, keyed, MOBILE, "hi")
    assert greeted.sms_id is not None
    assert not greeted.new_caller  # booked for by an agent, say: they may have a request

    [caller] = callers(postgres)
    assert (caller.phone, caller.language, caller.created_at, caller.last_seen_at) == (MOBILE, "hi", first, NOW)
    [sms] = texts(postgres)
    assert f"{keyed.public_url}/privacy" in sms.body
    assert "lang=en" not in sms.body  # the Hindi notice


def test_an_erased_caller_is_given_their_number_back_on_the_same_row(
    postgres: sa.Engine, redis_client: redis.Redis, keyed: Settings
) -> None:
    first = NOW - timedelta(days=400)
    with Session(postgres) as session:
        session.add(
            Caller(phone=retention.erased_form(MOBILE, KEY), language="hi", created_at=first, last_seen_at=first)
        )
        session.commit()
    [erased] = callers(postgres)

    first_call = greet(postgres, redis_client, keyed, MOBILE, "en")

    assert not first_call.new_caller  # their row, and its requests, are theirs again
    [caller] = callers(postgres)
    assert (caller.id, caller.phone, caller.language, caller.created_at, caller.last_seen_at) == (
        erased.id,
        MOBILE,
        "en",
        first,
        NOW,
    )


def test_an_erased_row_stays_erased_when_the_number_has_a_row_again(
    postgres: sa.Engine, redis_client: redis.Redis, keyed: Settings
) -> None:
    long_ago, lately = NOW - timedelta(days=400), NOW - timedelta(days=3)
    hashed = retention.erased_form(MOBILE, KEY)
    with Session(postgres) as session:
        session.add(Caller(phone=hashed, language="hi", created_at=long_ago, last_seen_at=long_ago))
        session.add(Caller(phone=MOBILE, language="hi", created_at=lately, last_seen_at=lately))
        session.commit()

    greet(postgres, redis_client, keyed, MOBILE, "en")

    erased, current = callers(postgres)
    assert (erased.phone, erased.language, erased.last_seen_at) == (hashed, "hi", long_ago)
    assert (current.phone, current.language, current.created_at, current.last_seen_at) == (MOBILE, "en", lately, NOW)


def test_a_landline_is_remembered_and_gets_no_sms(
    postgres: sa.Engine, redis_client: redis.Redis, keyed: Settings
) -> None:
    assert greet(postgres, redis_client, keyed, LANDLINE, "hi") == notice.FirstCall(sms_id=None, new_caller=True)

    assert [(caller.phone, caller.language) for caller in callers(postgres)] == [(LANDLINE, "hi")]
    assert texts(postgres) == []
    assert redis_client.llen(enqueue.TEXTS.key) == 0


def test_without_a_privacy_key_a_caller_is_added_as_before(
    postgres: sa.Engine, redis_client: redis.Redis, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path)
    notice.greet_first_call(postgres, redis_client, settings, OTHER_MOBILE, "en", NOW, None)
    notice.greet_first_call(postgres, redis_client, settings, MOBILE, "hi", NOW, None)

    assert [(caller.phone, caller.language) for caller in callers(postgres)] == [(OTHER_MOBILE, "en"), (MOBILE, "hi")]
    assert [sms.to_number for sms in texts(postgres)] == [OTHER_MOBILE, MOBILE]
