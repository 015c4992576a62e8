"""Where an agent and a caller talk: the conference room named for the caller. The desk phone's leg,
the browser's leg and (later) a supervisor's all join the room of the caller they are for."""

from __future__ import annotations


def room_of(call_sid: str) -> str:
    """The conference room of the caller on call `call_sid` (the platform's id of their call)."""
    return call_sid
