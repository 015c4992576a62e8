"""The conference room of a caller: where their agent talks with them and where a supervisor,
listening, whispering or barging, joins them. One name for every leg that joins it."""

from __future__ import annotations


def room_of(call_sid: str) -> str:
    """The room of the caller whose call is `call_sid` (Twilio's CallSid, Plivo's CallUUID): named
    after that call, so the agent's leg, the caller's and a supervisor's meet by it alone."""
    return call_sid
