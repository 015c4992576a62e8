"""Hypothesis strategies of call instructions, for the tests that hold the documents the helpline writes
as text (TwiML, Plivo XML) to the ones the platforms' SDKs write: text of every kind, with XML's own
characters, tab, CR and LF, Hindi, markup, a character XML cannot hold and a lone surrogate."""

from __future__ import annotations

from hypothesis import strategies as st

from telephony.call import DialNumber, Gather, Hangup, Pause, Play, Record, Redirect, Say

pieces = st.sampled_from([*"ab <>&\"'\t\r\n;=?/", "नमस्ते", "<cont>", "</cont>", "&amp;", "\x00", "\ud800"])
texts = st.one_of(st.lists(pieces, max_size=8).map("".join), st.text(max_size=8))
paths = st.one_of(texts, texts.map(lambda text: f"/voice/step?turn={text}"), st.just("https://x.test/a?b=1&c=2"))
seconds = st.integers(min_value=0, max_value=10_000)
numbers = st.from_regex(r"\+?[0-9]{0,14}", fullmatch=True)
says = st.builds(Say, texts, st.sampled_from(["hi-IN", "en-IN", ""]), texts)
plays = st.builds(Play, paths)
gathers = st.builds(
    Gather,
    st.lists(st.one_of(says, plays), max_size=3).map(tuple),
    paths,
    seconds,
    st.sampled_from(["#", "", "*"]) | texts,
    st.none() | st.integers(min_value=1, max_value=20),
    st.booleans(),
)
# The instructions every platform writes; a queue's and a room's are each test's own.
common = st.one_of(
    says,
    plays,
    gathers,
    st.builds(Record, paths, seconds, seconds, texts, st.booleans()),
    st.builds(Redirect, paths),
    st.builds(Pause, seconds),
    st.just(Hangup()),
    st.builds(DialNumber, numbers, numbers, paths, seconds, seconds, st.none() | paths),
)
