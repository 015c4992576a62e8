"""Who hears whom in a conference room (devtools.rooms), by the rules the simulators and sandboxes
keep: a muted member is heard by nobody, a coaching member by the one they coach, anyone else by
everyone; changes asked of the platform since the legs joined count, in order."""

from __future__ import annotations

from devtools.rooms import Room
from devtools.simulator import InRoom

ROOM = "CA" + "c" * 32
CALLER, AGENT, SUPERVISOR = ROOM, "CA" + "a" * 32, "CA" + "5" * 32


def joined(supervisor: InRoom) -> list[InRoom]:
    return [InRoom(ROOM, CALLER), InRoom(ROOM, AGENT), supervisor]


def test_a_listening_supervisor_hears_both_and_is_heard_by_nobody() -> None:
    room = Room.of(ROOM, joined(InRoom(ROOM, SUPERVISOR, muted=True)))
    assert room.heard_by(SUPERVISOR) == set()
    assert room.heard_by(CALLER) == {AGENT, SUPERVISOR}
    assert room.heard_by(AGENT) == {CALLER, SUPERVISOR}


def test_a_whispering_supervisor_is_heard_by_the_agent_alone() -> None:
    room = Room.of(ROOM, joined(InRoom(ROOM, SUPERVISOR, coach=AGENT)))
    assert room.heard_by(SUPERVISOR) == {AGENT}
    assert not room.hears(CALLER, SUPERVISOR)


def test_changes_asked_of_the_platform_apply_in_order_and_only_in_their_room() -> None:
    changes = [
        {"room": ROOM, "call_id": SUPERVISOR, "muted": False, "coach": AGENT},
        {"room": "another room", "call_id": SUPERVISOR, "muted": True, "coach": ""},
        {"room": ROOM, "call_id": SUPERVISOR, "muted": False, "coach": ""},
    ]
    room = Room.of(ROOM, joined(InRoom(ROOM, SUPERVISOR, muted=True)), changes)
    assert room.heard_by(SUPERVISOR) == {CALLER, AGENT}  # barging
    assert Room.of(ROOM, joined(InRoom(ROOM, SUPERVISOR, muted=True)), changes[:1]).heard_by(SUPERVISOR) == {AGENT}


def test_nobody_hears_themselves_nor_a_leg_in_another_room() -> None:
    room = Room.of(ROOM, [*joined(InRoom(ROOM, SUPERVISOR)), InRoom("elsewhere", "CA" + "e" * 32)])
    assert not room.hears(CALLER, CALLER)
    assert "CA" + "e" * 32 not in room.heard_by(CALLER)
