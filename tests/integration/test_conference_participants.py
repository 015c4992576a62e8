"""A member of a conference room changed by the platform's REST (`Telephony.update_participant`),
through the real SDK clients against each platform's sandbox: heard by nobody, by one member only
(Twilio's coach; Plivo's members cannot), or by all; a room or member not there, a refusal."""

from __future__ import annotations

import uuid

import pytest

from core.settings import Settings
from devtools.twilio_sandbox import TwilioSandbox
from telephony import telephony
from telephony.port import GatewayError

pytestmark = pytest.mark.both_platforms


def call_id(platform: str) -> str:
    return str(uuid.uuid4()) if platform == "plivo" else "CA" + uuid.uuid4().hex


def test_a_supervisor_heard_by_nobody_then_by_all_is_asked_of_the_platform_in_that_order(
    helpline_settings: Settings, sandbox: TwilioSandbox, telephony_platform: str
) -> None:
    room, caller, agent, supervisor = (call_id(telephony_platform) for _ in range(4))
    for leg in (agent, caller, supervisor):
        sandbox.join(room, leg)
    platform = telephony(helpline_settings)
    platform.update_participant(room, supervisor, muted=True)
    platform.update_participant(room, supervisor, muted=False)
    assert sandbox.participant_updates == [
        {"room": room, "call_id": supervisor, "muted": True, "coach": ""},
        {"room": room, "call_id": supervisor, "muted": False, "coach": ""},
    ]


def test_coaching_is_asked_of_twilio_and_refused_on_plivo_without_a_request(
    helpline_settings: Settings, sandbox: TwilioSandbox, telephony_platform: str
) -> None:
    room, agent, supervisor = (call_id(telephony_platform) for _ in range(3))
    sandbox.join(room, agent)
    sandbox.join(room, supervisor)
    platform = telephony(helpline_settings)
    if telephony_platform == "plivo":
        with pytest.raises(GatewayError, match="cannot coach") as refused:
            platform.update_participant(room, supervisor, muted=False, coach=agent)
        assert not refused.value.retryable
        assert sandbox.participant_updates == []
    else:
        platform.update_participant(room, supervisor, muted=False, coach=agent)
        assert sandbox.participant_updates == [{"room": room, "call_id": supervisor, "muted": False, "coach": agent}]


def test_a_room_not_in_progress_or_a_member_not_in_it_is_a_gateway_error_not_worth_retrying(
    helpline_settings: Settings, sandbox: TwilioSandbox, telephony_platform: str
) -> None:
    room, agent, stranger = (call_id(telephony_platform) for _ in range(3))
    platform = telephony(helpline_settings)
    with pytest.raises(GatewayError) as gone:
        platform.update_participant(room, agent, muted=True)  # the call ended: its room with it
    assert not gone.value.retryable
    sandbox.join(room, agent)
    with pytest.raises(GatewayError) as absent:
        platform.update_participant(room, stranger, muted=True)
    assert not absent.value.retryable
    assert sandbox.participant_updates == []


def test_the_platform_asking_us_to_slow_down_is_a_gateway_error_worth_retrying(
    helpline_settings: Settings, sandbox: TwilioSandbox, telephony_platform: str
) -> None:
    room, supervisor = call_id(telephony_platform), call_id(telephony_platform)
    sandbox.join(room, supervisor)
    sandbox.fail_next(1, status=429)
    with pytest.raises(GatewayError) as refused:
        telephony(helpline_settings).update_participant(room, supervisor, muted=False)
    assert refused.value.retryable
    assert sandbox.participant_updates == []
