"""Who hears whom in a conference room, by the platforms' rules, from what the simulators saw each leg
join with (`InRoom`) and the changes the sandboxes were asked for since (their `control` records).

- Twilio: a participant joined `muted` is heard by nobody and hears everyone; one joined with
  `coach="CA…"` is heard only by that participant (twilio.com/docs/voice/twiml/conference, attributes
  muted and coach); the participant resource changes them (Muted, Coaching, CallSidToCoach) and holds
  one (Hold: hears the hold music, heard by nobody; twilio.com/docs/voice/api/conference-participant-resource),
  naming the participant by its CallSid.
- Plivo: a member joined `muted` hears the room and nobody hears them (plivo.com/docs/voice/xml/conference);
  Mute and Deaf a Member change it, each undone by DELETE (plivo.com/docs/voice/api/conference/member/
  mute-a-member, deaf-a-member), naming the member by its ConferenceMemberID. Plivo's members cannot coach.
Everyone else hears everyone; nobody hears themselves."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from devtools.simulator import InRoom


@dataclass(frozen=True)
class Member:
    call_id: str
    muted: bool = False  # heard by nobody
    coach: str = ""  # the one member who hears this one, when coaching
    deaf: bool = False  # hears nobody (Plivo's Deaf)
    held: bool = False  # hears the hold music only, heard by nobody (Twilio's Hold)


@dataclass(frozen=True)
class Room:
    name: str
    members: Mapping[str, Member]

    @classmethod
    def of(cls, name: str, joined: Iterable[InRoom], control: Iterable[Mapping[str, Any]] = ()) -> Room:
        """The room as its legs joined it, then each change a sandbox was asked for, in order."""
        joined = [event for event in joined if event.room == name]
        members = {event.call_id: Member(event.call_id, event.muted, event.coach) for event in joined}
        calls = {event.member: event.call_id for event in joined if event.member}  # the platform's name → call
        for change in control:
            call = calls.get(str(change.get("member") or change.get("call") or ""))
            if change.get("room") == name and call in members:
                members[call] = _changed(members[call], str(change["action"]), change.get("params") or {})
        return cls(name, members)

    def hears(self, listener: str, speaker: str) -> bool:
        """Whether `listener` hears `speaker` (both call ids of members)."""
        hearing = self.members.get(listener)
        if listener == speaker or hearing is None or hearing.deaf or hearing.held:
            return False
        talking = self.members[speaker]
        if talking.muted or talking.held:
            return False
        return not talking.coach or talking.coach == listener

    def heard_by(self, speaker: str) -> set[str]:
        return {listener for listener in self.members if self.hears(listener, speaker)}


def _changed(member: Member, action: str, params: Mapping[str, Any]) -> Member:
    if action == "participant.update":  # Twilio: only what the request names changes
        if "Muted" in params:
            member = replace(member, muted=params["Muted"] == "true")
        if "Coaching" in params:
            coaching = params["Coaching"] == "true"
            member = replace(member, coach=str(params.get("CallSidToCoach", "")) if coaching else "")
        if "Hold" in params:
            member = replace(member, held=params["Hold"] == "true")
        return member
    on = not action.endswith(".stop")  # Plivo: POST does it, DELETE undoes it
    if action.startswith("member.mute"):
        return replace(member, muted=on)
    if action.startswith("member.deaf"):
        return replace(member, deaf=on)
    return member
