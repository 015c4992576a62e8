"""A supervisor's leg in a conference room changed by the platform's REST (`CallControl.monitor_member`),
through the real SDK clients against each platform's sandbox: heard by nobody, by one member only
(Twilio's coach; Plivo's members cannot), or by all, by the same request that mutes an agent; a room
no longer in progress, a refusal."""

from __future__ import annotations

import uuid

import pytest

from core.settings import Settings
from devtools.twilio_sandbox import TwilioSandbox
from telephony import call_control
from telephony.port import GatewayError

pytestmark = pytest.mark.both_platforms


def call_id(platform: str) -> str:
    return str(uuid.uuid4()) if platform == "plivo" else "CA" + uuid.uuid4().hex


def member_of(platform: str, call: str, member_id: str) -> str:
    """How the platform names a call in a room: Twilio by its CallSid, Plivo by a ConferenceMemberID."""
    return member_id if platform == "plivo" else call


def changes(sandbox: TwilioSandbox) -> list[tuple[str, str, dict[str, str]]]:
    """The changes of a member asked of the platform: (action, member, what), lists of rooms aside."""
    return [
        (c["action"], c.get("member") or c["call"], c["params"])
        for c in sandbox.control
        if c["action"] != "conference.list"
    ]


def test_a_supervisor_heard_by_nobody_then_by_all_is_asked_of_the_platform_in_that_order(
    helpline_settings: Settings, sandbox: TwilioSandbox, telephony_platform: str
) -> None:
    room, supervisor = call_id(telephony_platform), member_of(telephony_platform, call_id(telephony_platform), "3")
    control = call_control(helpline_settings)
    control.monitor_member(room, supervisor, muted=True)
    control.monitor_member(room, supervisor, muted=False)
    if telephony_platform == "plivo":  # POST …/Member/3/Mute/, then DELETE on it
        assert [(action, member) for action, member, _ in changes(sandbox)] == [
            ("member.mute", "3"),
            ("member.mute.stop", "3"),
        ]
        assert {c["room"] for c in sandbox.control} == {room}
    else:
        assert changes(sandbox) == [
            ("participant.update", supervisor, {"Muted": "true", "Coaching": "false"}),
            ("participant.update", supervisor, {"Muted": "false", "Coaching": "false"}),
        ]


def test_coaching_is_asked_of_twilio_and_refused_on_plivo_without_a_request(
    helpline_settings: Settings, sandbox: TwilioSandbox, telephony_platform: str
) -> None:
    room, agent = call_id(telephony_platform), call_id(telephony_platform)
    supervisor = member_of(telephony_platform, call_id(telephony_platform), "2")
    control = call_control(helpline_settings)
    if telephony_platform == "plivo":
        with pytest.raises(GatewayError, match="cannot coach") as refused:
            control.monitor_member(room, supervisor, muted=False, coach=agent)
        assert not refused.value.retryable
        assert sandbox.control == []
    else:
        control.monitor_member(room, supervisor, muted=False, coach=agent)
        coaching = {"Muted": "false", "Coaching": "true", "CallSidToCoach": agent}
        assert changes(sandbox) == [("participant.update", supervisor, coaching)]


def test_a_room_no_longer_in_progress_is_a_gateway_error_not_worth_retrying(
    helpline_settings: Settings, sandbox: TwilioSandbox, telephony_platform: str
) -> None:
    room, supervisor = call_id(telephony_platform), member_of(telephony_platform, call_id(telephony_platform), "4")
    sandbox.end_room(room)  # the caller hung up: their room ended with them
    with pytest.raises(GatewayError) as gone:
        call_control(helpline_settings).monitor_member(room, supervisor, muted=True)
    assert not gone.value.retryable
    assert changes(sandbox) == []


def test_a_member_not_named_as_the_platform_names_members_is_refused_without_a_request(
    helpline_settings: Settings, sandbox: TwilioSandbox, telephony_platform: str
) -> None:
    room = call_id(telephony_platform)
    for junk in ("", "../Conference", "CA" + "z" * 32, "1" * 40):
        with pytest.raises(GatewayError) as refused:
            call_control(helpline_settings).monitor_member(room, junk, muted=False)
        assert not refused.value.retryable
    assert sandbox.control == []


def test_the_platform_asking_us_to_slow_down_is_a_gateway_error_worth_retrying(
    helpline_settings: Settings, sandbox: TwilioSandbox, telephony_platform: str
) -> None:
    room, supervisor = call_id(telephony_platform), member_of(telephony_platform, call_id(telephony_platform), "5")
    sandbox.fail_next(1, status=429)
    with pytest.raises(GatewayError) as refused:
        call_control(helpline_settings).monitor_member(room, supervisor, muted=True)
    assert refused.value.retryable
    assert changes(sandbox) == []
