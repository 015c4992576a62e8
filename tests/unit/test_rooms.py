"""Who hears whom in a conference room (devtools.rooms), by the rules the simulators and sandboxes
keep: a muted member is heard by nobody, a coaching member by the one they coach, anyone else by
everyone; changes asked of the platform since the legs joined (the sandboxes' `control` records,
naming a member as each platform does) count, in order."""

from __future__ import annotations

from devtools.rooms import Room
from devtools.simulator import InRoom

ROOM = "CA" + "c" * 32
CALLER, AGENT, SUPERVISOR = ROOM, "CA" + "a" * 32, "CA" + "5" * 32


def joined(supervisor: InRoom) -> list[InRoom]:
    return [InRoom(ROOM, CALLER, member=CALLER), InRoom(ROOM, AGENT, member=AGENT), supervisor]


def twilio(room: str, call: str, **params: str) -> dict[str, object]:
    """A Participant update as the Twilio sandbox records it."""
    return {"action": "participant.update", "call": call, "room": room, "params": params}


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
        twilio(ROOM, SUPERVISOR, Muted="false", Coaching="true", CallSidToCoach=AGENT),
        twilio("another room", SUPERVISOR, Muted="true", Coaching="false"),
        twilio(ROOM, SUPERVISOR, Muted="false", Coaching="false"),
    ]
    supervisor = InRoom(ROOM, SUPERVISOR, muted=True, member=SUPERVISOR)
    room = Room.of(ROOM, joined(supervisor), changes)
    assert room.heard_by(SUPERVISOR) == {CALLER, AGENT}  # barging
    assert Room.of(ROOM, joined(supervisor), changes[:1]).heard_by(SUPERVISOR) == {AGENT}


def test_a_held_caller_hears_nobody_and_is_heard_by_nobody_until_taken_off_hold() -> None:
    supervisor = InRoom(ROOM, SUPERVISOR, muted=True, member=SUPERVISOR)
    held = Room.of(ROOM, joined(supervisor), [twilio(ROOM, CALLER, Hold="true", HoldUrl="https://x/m.mp3")])
    assert held.heard_by(CALLER) == set()
    assert held.heard_by(AGENT) == {SUPERVISOR}
    back = Room.of(ROOM, joined(supervisor), [twilio(ROOM, CALLER, Hold="true"), twilio(ROOM, CALLER, Hold="false")])
    assert back.heard_by(CALLER) == {AGENT, SUPERVISOR}


def test_a_plivo_member_is_named_by_its_member_id_muted_by_post_and_heard_again_by_delete() -> None:
    supervisor = InRoom(ROOM, SUPERVISOR, muted=True, member="17")
    mute: dict[str, object] = {"action": "member.mute", "call": None, "room": ROOM, "member": "17", "params": {}}
    unmute = {**mute, "action": "member.mute.stop"}
    someone_else = {**unmute, "member": "18"}
    assert Room.of(ROOM, joined(supervisor), [unmute]).heard_by(SUPERVISOR) == {CALLER, AGENT}
    assert Room.of(ROOM, joined(supervisor), [unmute, mute]).heard_by(SUPERVISOR) == set()
    assert Room.of(ROOM, joined(supervisor), [someone_else]).heard_by(SUPERVISOR) == set()


def test_nobody_hears_themselves_nor_a_leg_in_another_room() -> None:
    room = Room.of(ROOM, [*joined(InRoom(ROOM, SUPERVISOR)), InRoom("elsewhere", "CA" + "e" * 32)])
    assert not room.hears(CALLER, CALLER)
    assert "CA" + "e" * 32 not in room.heard_by(CALLER)
