"""Helpers for the hostile-input tests: posts signed exactly as the app checks them (repeated keys,
raw bodies and odd query strings included), the TwiML rules Twilio runs documents by, and the
strategies that make junk."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlencode, urlparse, urlsplit
from xml.etree import ElementTree

import redis
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.test import EnvironBuilder, TestResponse
from werkzeug.wrappers import Request

from dispatch import context, lifecycle, offers
from dispatch.intake import unused_number
from dispatch.jobs import now
from dispatch.matching import Candidate
from ivr.callstate import PREFIX, CallState
from storage.db import session_scope
from storage.models import Caller, ServiceRequest
from telephony.twilio.signature import SIGNATURE_HEADER
from tests.factories import AUTH_TOKEN, GPO, PUBLIC_URL, add_worker

Pairs = Sequence[tuple[str, str]]
FORM = "application/x-www-form-urlencoded"


def signature(url: str, form: MultiDict[str, str] | dict[str, str], token: str = AUTH_TOKEN) -> str:
    return str(RequestValidator(token).compute_signature(url, form))


def as_the_app_reads_it(path: str, body: bytes, content_type: str, query: str) -> tuple[str, MultiDict[str, str]]:
    """The URL the app checks the signature against, and the form it reads: what Twilio would have
    signed, had it sent these bytes."""
    environ = EnvironBuilder(
        path=path, method="POST", data=body, content_type=content_type, query_string=query
    ).get_environ()
    request = Request(environ)
    seen = request.query_string.decode("latin-1")
    url = PUBLIC_URL + path + (f"?{seen}" if seen else "")
    return urlparse(url).geturl(), request.form  # as the validator rebuilds it (tabs and line ends dropped)


def post_raw(
    client: FlaskClient,
    path: str,
    body: bytes,
    *,
    content_type: str = FORM,
    query: bytes = b"",
    headers: dict[str, str] | None = None,
    signed: bool = True,
) -> TestResponse:
    """Post raw bytes, signed over the public URL and the form the app will parse from them."""
    text_query = query.decode("latin-1")
    sent = dict(headers or {})
    if signed:
        url, form = as_the_app_reads_it(path, body, content_type, text_query)
        sent[SIGNATURE_HEADER] = signature(url, form)
    return client.post(path, data=body, content_type=content_type, query_string=text_query, headers=sent)


def post_pairs(
    client: FlaskClient, path: str, pairs: Pairs, *, query: bytes = b"", headers: dict[str, str] | None = None
) -> TestResponse:
    """Post a form that may repeat keys, signed as the app checks it."""
    return post_raw(client, path, _urlencoded(pairs), query=query, headers=headers)


def _urlencoded(pairs: Pairs) -> bytes:
    return urlencode(list(pairs)).encode()


# -- TwiML as Twilio runs it ----------------------------------------------------------------------

AUDIO = {"Say": {"language", "voice", "loop"}, "Play": {"loop", "digits"}, "Pause": {"length"}}
VERBS: dict[str, set[str]] = {
    **AUDIO,
    "Gather": {
        "action",
        "method",
        "timeout",
        "finishOnKey",
        "numDigits",
        "actionOnEmptyResult",
        "input",
        "language",
        "hints",
        "speechTimeout",
    },
    "Redirect": {"method"},
    "Hangup": set(),
    "Reject": {"reason"},
    "Leave": set(),
    "Enqueue": {"action", "method", "waitUrl", "waitUrlMethod", "workflowSid"},
    "Dial": {"action", "method", "timeout", "callerId", "record", "timeLimit", "hangupOnStar"},
    "Record": {"action", "method", "timeout", "finishOnKey", "maxLength", "playBeep", "trim"},
}
DIAL_NOUNS = {
    "Queue": {"url", "method"},
    "Number": {"url", "method", "sendDigits"},
    "Client": set(),
    # twilio.com/docs/voice/twiml/conference#attributes: those the helpline's rooms use
    "Conference": {
        "endConferenceOnExit",
        "muted",
        "coach",
        "beep",
        "record",
        "recordingStatusCallback",
        "recordingStatusCallbackEvent",
        "recordingStatusCallbackMethod",
    },
}
ENDS_DOCUMENT = frozenset({"Redirect", "Hangup", "Reject", "Leave"})
LANGUAGES = frozenset({"hi-IN", "en-IN"})
MAX_TWIML_BYTES = 64 * 1024
MAX_SAY_CHARS = 4000


class TwimlProblem(AssertionError):
    """A document Twilio would refuse, or would run into silence or into an unreachable verb."""


def twiml(answer: TestResponse) -> ElementTree.Element:
    """The answer's TwiML, parsed; refuses anything Twilio could not run."""
    if answer.mimetype not in ("text/xml", "application/xml"):
        raise TwimlProblem(f"content type {answer.mimetype!r} is not TwiML")
    if len(answer.data) > MAX_TWIML_BYTES:
        raise TwimlProblem(f"{len(answer.data)} bytes: over Twilio's 64 kB")
    try:
        root = ElementTree.fromstring(answer.data)
    except ElementTree.ParseError as error:
        raise TwimlProblem(f"not XML: {error}: {answer.data[:200]!r}") from None
    if root.tag != "Response":
        raise TwimlProblem(f"root is <{root.tag}>, not <Response>")
    return root


def check_voice_document(app: Flask, root: ElementTree.Element, *, must_end: bool) -> None:
    """Every verb is one Twilio knows, with attributes it knows, pointing at our own routes;
    nothing follows a verb that ends the document; a Gather never leaves the caller in silence;
    with `must_end`, the document ends in a verb that moves the call on (never runs out)."""
    verbs = list(root)
    for index, verb in enumerate(verbs):
        _check_verb(app, verb)
        last = index == len(verbs) - 1
        if not last and (verb.tag in ENDS_DOCUMENT or (verb.tag in ("Enqueue", "Dial") and verb.get("action"))):
            raise TwimlProblem(f"<{verbs[index + 1].tag}> after <{verb.tag}> can never run")
        if verb.tag == "Gather" and last and verb.get("actionOnEmptyResult") != "true":
            raise TwimlProblem("a <Gather> that hears nothing ends the call: nothing follows it")
        in_flow = must_end and verb.tag == "Gather" and verb.get("actionOnEmptyResult") == "true" and not last
        if in_flow and verbs[index + 1].tag != "Redirect":
            raise TwimlProblem(f"<Gather> of the call flow is followed by <{verbs[index + 1].tag}>, not <Redirect>")
    if must_end and (not verbs or not _moves_on(verbs[-1])):
        raise TwimlProblem(f"the document runs out after <{verbs[-1].tag if verbs else 'Response'}>: the call ends")


def _moves_on(verb: ElementTree.Element) -> bool:
    return (
        verb.tag in ENDS_DOCUMENT
        or verb.tag in ("Enqueue", "Dial")
        or (verb.tag == "Gather" and verb.get("actionOnEmptyResult") == "true")
    )


def _check_verb(app: Flask, verb: ElementTree.Element) -> None:  # noqa: C901 (Twilio's rules, verb by verb)
    if verb.tag not in VERBS:
        raise TwimlProblem(f"<{verb.tag}> is not a TwiML verb")
    unknown = set(verb.attrib) - VERBS[verb.tag]
    if unknown:
        raise TwimlProblem(f"<{verb.tag}> has attributes Twilio does not know: {sorted(unknown)}")
    for name in ("method", "waitUrlMethod"):
        if verb.get(name, "POST") not in ("GET", "POST"):
            raise TwimlProblem(f"<{verb.tag} {name}={verb.get(name)!r}>")
    for name in ("timeout", "numDigits", "length", "loop", "maxLength"):
        if verb.get(name) is not None and not verb.get(name, "").isdigit():
            raise TwimlProblem(f"<{verb.tag} {name}={verb.get(name)!r}> is not a number")
    for name in ("action", "waitUrl"):
        if verb.get(name) is not None:
            check_route(app, verb.get(name, ""))
    if verb.tag == "Redirect":
        check_route(app, verb.text or "")
    if verb.tag == "Say":
        _check_say(verb)
    children = list(verb)
    if verb.tag == "Gather":
        for child in children:
            if child.tag not in AUDIO:
                raise TwimlProblem(f"<{child.tag}> may not be nested in <Gather>")
            _check_verb(app, child)
    elif verb.tag == "Dial":
        for noun in children:
            if noun.tag not in DIAL_NOUNS or set(noun.attrib) - DIAL_NOUNS[noun.tag]:
                raise TwimlProblem(f"<Dial> holds <{noun.tag} {sorted(noun.attrib)}>")
            for name in ("url", "recordingStatusCallback"):
                if noun.get(name):
                    check_route(app, noun.get(name, ""))
    elif children:
        raise TwimlProblem(f"<{verb.tag}> holds <{children[0].tag}>")


def _check_say(say: ElementTree.Element) -> None:
    text = (say.text or "").strip()
    if not text or len(text) > MAX_SAY_CHARS:
        raise TwimlProblem(f"<Say> of {len(text)} characters")
    if say.get("language") not in LANGUAGES:
        raise TwimlProblem(f"<Say language={say.get('language')!r}>")


def check_route(app: Flask, url: str) -> None:
    """A URL in our TwiML is one of our own webhooks, answered by POST."""
    parts = urlsplit(url)
    if parts.scheme or parts.netloc:
        raise TwimlProblem(f"{url!r} leaves the helpline")
    try:
        app.url_map.bind("helpline.example.gov.in").match(parts.path, method="POST")
    except (NotFound, MethodNotAllowed):
        raise TwimlProblem(f"{url!r} is not a webhook of ours") from None


def call_states_load(connection: redis.Redis) -> int:
    """Every call's state in Redis still loads, every stored answer is still TwiML, and no lock is
    left behind; the number of calls."""
    calls = 0
    for raw in connection.scan_iter(match=f"{PREFIX}*"):
        key = raw.decode()
        if key.endswith(":lock"):
            raise AssertionError(f"{key} was left locked")
        state = CallState(connection, key.removeprefix(PREFIX))
        state.load()
        for field, value in connection.hgetall(key).items():
            assert isinstance(field, bytes), field  # the connection does not decode responses
            if field.startswith(b"answer:"):
                assert ElementTree.fromstring(value).tag == "Response"
        calls += 1
    return calls


# -- junk ------------------------------------------------------------------------------------------

NASTY = [
    "",
    " ",
    "\x00",
    "\x00\x01\x1f",
    "\r\n",
    "-1",
    "0",
    "00",
    "+0",
    "1e9",
    "NaN",
    "Infinity",
    "null",
    "None",
    "99999999999999999999999999",
    "٣",
    "१२",
    "²",
    "1_0",
    " 1 ",
    "<Response/>",
    "]]>",
    "&amp;",
    "%s%n",
    "{0}",
    "' OR 1=1 --",
    "../../etc/passwd",
    "\ud7ff",
    "\ufeff",
    "\u202e",
    "🙂",
    "नमस्ते",
    "\uffff",
]


def junk(max_size: int = 60) -> st.SearchStrategy[str]:
    """Text a form field should never hold: anything at all, the known troublemakers, and huge."""
    return st.one_of(
        st.sampled_from(NASTY),
        st.text(max_size=max_size),
        st.tuples(st.text(min_size=1, max_size=4), st.integers(250, 5000)).map(lambda huge: huge[0] * huge[1]),
        st.integers().map(str),
    )


def maybe(values: st.SearchStrategy[str]) -> st.SearchStrategy[str | None]:
    """A field that may be missing altogether."""
    return st.one_of(st.none(), values)


def pairs_of(fields: dict[str, st.SearchStrategy[str | None]]) -> st.SearchStrategy[list[tuple[str, str]]]:
    """A form of these fields (missing ones left out), extra junk keys, and some keys repeated."""

    @st.composite
    def build(draw: st.DrawFn) -> list[tuple[str, str]]:
        pairs = [(name, value) for name, value in ((n, draw(s)) for n, s in fields.items()) if value is not None]
        pairs += draw(st.lists(st.tuples(junk(20), junk()), max_size=3))
        if len(pairs) > 0 and draw(st.booleans()):  # `pairs and ...` would lend the list's type to the draw
            repeated = draw(st.lists(st.sampled_from([name for name, _ in pairs]), max_size=3))
            pairs += [(name, draw(junk())) for name in repeated]
        return draw(st.permutations(pairs))

    return build()


def counts(rows: Iterable[object]) -> int:
    return sum(1 for _ in rows)


# -- senders of hostile texts, each with the job or offer their role implies ----------------------------


PHONES = (f"+9197{n:08d}" for n in itertools.count(10_000_000))


@dataclass(frozen=True)
class Sender:
    phone: str
    role: str
    request_id: int | None = None


def new_request(engine: sa.Engine, citizen: str) -> int:
    with session_scope(engine) as session:
        caller = Caller(phone=citizen, language="hi")
        session.add(caller)
        session.flush()
        request = ServiceRequest(
            number=unused_number(session),
            service_code="plumber",
            pincode="226001",
            district="LUCKNOW",
            latitude=GPO.latitude,
            longitude=GPO.longitude,
            caller_id=caller.id,
            address_note="12 Hazratganj",
        )
        session.add(request)
        session.flush()
        assert request.id is not None
        return request.id


def sender_of(ctx: context.JobContext, role: str) -> Sender:
    """A fresh sender in `role`, with the job or offer that role implies."""
    engine, phone = ctx.engine, next(PHONES)
    if role == "stranger":
        return Sender(phone, role)
    if role == "citizen":
        request_id = new_request(engine, phone)
        finish(engine, request_id, add_worker(engine, "Ramesh", next(PHONES), 0.5))
        return Sender(phone, role, request_id)
    worker_id = add_worker(engine, "Suresh", phone, 0.5)
    request_id = new_request(engine, next(PHONES))
    with session_scope(engine) as session:
        if role == "offered":
            offers.next_offers(
                session, request_id, [Candidate(worker_id, 0.5, None, 4.0)], ctx.settings.dispatch, now()
            )
        else:
            assert lifecycle.assign(session, request_id, worker_id, "user:1", now()).ok
    return Sender(phone, role, request_id)


def finish(engine: sa.Engine, request_id: int, worker_id: int) -> None:
    with session_scope(engine) as session:
        assert lifecycle.assign(session, request_id, worker_id, "user:1", now()).ok
    with session_scope(engine) as session:
        request = session.get(ServiceRequest, request_id)
        assert request is not None
        assert request.completion_code is not None
        assert offers.complete(session, request.number, worker_id, request.completion_code, now())
