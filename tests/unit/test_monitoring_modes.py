"""How a supervisor's leg is in the caller's room, by mode (callcentre.monitoring.participant): pure."""

from __future__ import annotations

from callcentre.monitoring import participant
from storage.monitoring import Mode

AGENT_LEG = "CA" + "a" * 32


def test_listening_is_muted_whispering_coaches_the_agents_leg_and_barging_is_heard_by_all() -> None:
    assert participant(Mode.LISTEN, AGENT_LEG) == (True, "")
    assert participant(Mode.WHISPER, AGENT_LEG) == (False, AGENT_LEG)
    assert participant(Mode.BARGE, AGENT_LEG) == (False, "")


def test_a_whisper_to_an_agent_whose_leg_is_unknown_stays_muted_rather_than_reach_the_caller() -> None:
    assert participant(Mode.WHISPER, "") == (True, "")
