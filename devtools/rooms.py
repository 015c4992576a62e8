"""Who hears whom in a conference room, by the platforms' rules, from what the simulators saw each leg
join with (`InRoom`) and what the sandboxes were asked to change since (`participant_updates`).

- Twilio: a participant joined `muted` is heard by nobody and hears everyone; one joined with
  `coach="CA…"` is heard only by that participant (twilio.com/docs/voice/twiml/conference, attributes
  muted and coach); the participant resource changes both (Muted, Coaching, CallSidToCoach:
  twilio.com/docs/voice/api/conference-participant-resource).
- Plivo: a member joined `muted` hears the room and nobody hears them (plivo.com/docs/voice/xml/conference);
  Mute/Unmute a Member changes it (plivo.com/docs/voice/api/conferences). Plivo's members cannot coach.
Everyone else hears everyone; nobody hears themselves."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from devtools.simulator import InRoom


@dataclass(frozen=True)
class Member:
    call_id: str
    muted: bool = False
    coach: str = ""  # the one member who hears this one, when coaching


@dataclass(frozen=True)
class Room:
    name: str
    members: Mapping[str, Member]

    @classmethod
    def of(cls, name: str, joined: Iterable[InRoom], changes: Iterable[Mapping[str, Any]] = ()) -> Room:
        """The room as its legs joined it, then each change the platform was asked for, in order."""
        members = {
            event.call_id: Member(event.call_id, event.muted, event.coach) for event in joined if event.room == name
        }
        for change in changes:
            if change["room"] == name and change["call_id"] in members:
                member = members[change["call_id"]]
                members[member.call_id] = replace(member, muted=bool(change["muted"]), coach=str(change["coach"]))
        return cls(name, members)

    def hears(self, listener: str, speaker: str) -> bool:
        """Whether `listener` hears `speaker` (both call ids of members)."""
        if listener == speaker or listener not in self.members:
            return False
        talking = self.members[speaker]
        if talking.muted:
            return False
        return not talking.coach or talking.coach == listener

    def heard_by(self, speaker: str) -> set[str]:
        return {listener for listener in self.members if self.hears(listener, speaker)}
