"""District names in Devanagari: every district of Uttar Pradesh the India Post directory knows has
its Hindi name, keyed by the directory's own spelling; a Hindi caller hears it read back, a Hindi
worker's SMS names it, and the console shows it to those who read the console in Hindi."""

from __future__ import annotations

import re

import pytest
import redis
import sqlalchemy as sa
from flask import Flask
from sqlmodel import col

from core import pincodes
from core.settings import Settings
from devtools.twilio_sandbox import TwilioSandbox
from dispatch import context, jobs
from dispatch.queues import QueueName, queue
from ivr.effects import CallContext, lookup_pincode
from sewamitra.app import create_app
from storage.db import session_scope
from storage.models import Worker
from tests.console import engine_of
from tests.factories import ALWAYS_OPEN, add_request, add_worker, answer_our_call, call, run_jobs, with_hours
from tests.factories import run_context_jobs as dispatch_jobs

DEVANAGARI = re.compile(r"[\u0900-\u097F]")


@pytest.fixture
def app_settings(helpline_settings: Settings) -> Settings:
    return with_hours(helpline_settings, **ALWAYS_OPEN)


@pytest.fixture
def settings(helpline_settings: Settings) -> Settings:
    """The jobs' settings (`installed`): the whole helpline, Twilio at the sandbox."""
    return helpline_settings


def test_every_district_of_uttar_pradesh_the_directory_knows_has_its_hindi_name() -> None:
    directory = pincodes.districts("UTTAR PRADESH")
    names = pincodes.hindi_names()
    assert len(directory) == 75
    assert sorted(set(directory) - names.keys()) == []
    assert sorted(names.keys() - set(directory)) == []  # keyed by the directory's own spelling
    assert all(DEVANAGARI.search(name) and not re.search(r"[A-Za-z]", name) for name in names.values())
    assert len(set(names.values())) == len(names)
    spot = {
        "LUCKNOW": "लखनऊ",
        "PRAYAGRAJ": "प्रयागराज",
        "AYODHYA": "अयोध्या",
        "KANPUR NAGAR": "कानपुर नगर",
        "GAUTAM BUDDHA NAGAR": "गौतम बुद्ध नगर",
        "SANT KABEER NAGAR": "संत कबीर नगर",
        "SHRAVASTI": "श्रावस्ती",
        "KUSHI NAGAR": "कुशीनगर",
        "AMROHA": "अमरोहा",
        "SHAMLI": "शामली",
        "HAPUR": "हापुड़",
        "SAMBHAL": "संभल",
        "KASGANJ": "कासगंज",
        "VARANASI": "वाराणसी",
        "KHERI": "लखीमपुर खीरी",
    }
    assert {district: names[district] for district in spot} == spot


def test_a_district_reads_in_the_language_asked() -> None:
    assert pincodes.display_name("GAUTAM BUDDHA NAGAR") == "Gautam Buddha Nagar"
    assert pincodes.display_name("GAUTAM BUDDHA NAGAR", "hi") == "गौतम बुद्ध नगर"
    assert pincodes.display_name("PUNE", "hi") == "Pune"  # outside the state: as the directory spells it


def test_the_ivr_reads_the_district_back_in_the_callers_language(
    helpline_settings: Settings, engine: sa.Engine, redis_client: redis.Redis
) -> None:
    def heard(language: str, pincode: str) -> tuple[str, dict[str, str]]:
        ctx = CallContext(
            settings=helpline_settings,
            engine=engine,
            redis=redis_client,
            call_sid="CA" + "2" * 32,
            caller=None,
            turn=1,
            language=language,
        )
        outcome = lookup_pincode(ctx, {"pincode": pincode})
        return outcome.name, dict(outcome.values)

    assert heard("hi", "226001") == ("found", {"district": "लखनऊ"})
    assert heard("en", "226001") == ("found", {"district": "Lucknow"})
    assert heard("hi", "201301") == ("found", {"district": "गौतम बुद्ध नगर"})


def test_a_hindi_caller_hears_the_district_in_hindi(app: Flask) -> None:
    transcript = call(app, "1,1,1,226001#,1,9")
    assert transcript.said("ज़िला लखनऊ।")
    assert not transcript.said("Lucknow")


@pytest.mark.parametrize(("language", "locality"), [("hi", "लखनऊ 226001"), ("en", "Lucknow 226001")])
def test_an_offer_sms_names_the_district_in_the_workers_language(
    app: Flask, sandbox: TwilioSandbox, language: str, locality: str
) -> None:
    worker = add_worker(engine_of(app), "Ramesh Yadav", "+919800000001", 1.0)
    with session_scope(engine_of(app)) as db:
        db.execute(sa.update(Worker).where(col(Worker.id) == worker).values(language=language))
    redis_client = app.extensions["sewamitra"].redis
    queue(redis_client, QueueName.DISPATCH).enqueue(jobs.rebuild_index)
    queue(redis_client, QueueName.DISPATCH).enqueue(jobs.dispatch_request, add_request(engine_of(app)))
    run_jobs(app)
    [offer] = [m["body"] for m in sandbox.messages if m["to"] == "+919800000001"]
    assert locality in offer


def test_a_worker_rung_with_an_offer_hears_the_district_in_hindi(
    installed: context.JobContext, engine: sa.Engine, sandbox: TwilioSandbox, settings: Settings
) -> None:
    add_worker(engine, "Kamla Devi", "+919800000501", 0.5, voice=True)  # speaks Hindi, as workers do unless told
    jobs.rebuild_index()
    jobs.dispatch_request(add_request(engine))
    dispatch_jobs(installed)
    [placed] = sandbox.calls
    transcript = answer_our_call(create_app(settings).test_client(), placed, "2")
    assert transcript.said("प्लंबर, लखनऊ, 2 2 6 0 0 1, जल्द से जल्द।")
