"""The port every SMS and outbound call goes through: jobs depend on `Telephony`, never on a
platform, and catch `GatewayError` by type."""

from __future__ import annotations

from typing import Protocol

from core.exceptions import SewamitraError

DEFAULT_RING_TIMEOUT = 30  # seconds an outbound call rings before the platform gives up
# Statuses under 500 that say "try again later" rather than "this request is wrong".
RETRYABLE_CLIENT_STATUSES = frozenset({408, 429})


class GatewayError(SewamitraError):
    """Sending failed; `retryable` tells the job whether trying again later can help."""

    def __init__(self, message: str, *, retryable: bool, code: int | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.code = code  # the platform's error code (e.g. Twilio's 21211 invalid 'To'), when it gave one
        self.status = status  # the HTTP status, when there was an answer at all


class Telephony(Protocol):
    """Sends SMS and places outbound calls; both return the platform's id for status callbacks."""

    def send_sms(
        self, to: str, body: str, *, status_callback: str | None = None, dlt_template_id: str | None = None
    ) -> str:
        """`dlt_template_id`: the text's template as registered on India's DLT (a platform that
        sends toward India passes it on; one whose sender registry maps it itself may ignore it)."""
        ...

    def place_call(
        self, to: str, url: str, *, status_callback: str | None = None, timeout: int = DEFAULT_RING_TIMEOUT
    ) -> str: ...


class RecordingStore(Protocol):
    """The recordings a platform keeps of what callers said (the spoken address): fetched for an
    agent with the platform's credentials, deleted when their time is up. Both name a recording by
    the platform's id and build its URL themselves: a stored URL is never fetched."""

    def recording_audio(self, recording_id: str) -> tuple[bytes, str]:
        """The recording's audio and its content type; GatewayError when it cannot be had."""
        ...

    def delete_recording(self, recording_id: str) -> None:
        """Delete it at the platform (already gone counts as deleted); GatewayError otherwise."""
        ...


MAX_RECORDING_BYTES = 8 << 20  # a 30-second recording is well under 1 MB; more is not a recording of ours


def is_retryable_status(status: int) -> bool:
    """5xx, 408 and 429 may succeed later; any other 4xx (bad number, bad credentials) fails again."""
    return status >= 500 or status in RETRYABLE_CLIENT_STATUSES


class CallControl(Protocol):
    """A live call moved and an agent's conference room run by the platform's REST API: the caller
    put in a room at once, held with music, an agent muted. `member` is the platform's name for a
    call in a room: Twilio's CallSid, Plivo's ConferenceMemberID. Each raises GatewayError."""

    def redirect_call(self, call_id: str, url: str) -> None:
        """The call leaves what it is doing (a queue, a room) and runs the document at `url` now."""
        ...

    def hold_member(self, room: str, member: str, hold: bool, music_url: str) -> None:
        """`hold`: the member hears `music_url` and nobody hears them; False: back in the room."""
        ...

    def mute_member(self, room: str, member: str, muted: bool) -> None:
        """`muted`: the room no longer hears the member (they still hear it); False: heard again."""
        ...

    def monitor_member(self, room: str, member: str, *, muted: bool, coach: str = "") -> None:
        """Who hears the member (a supervisor's leg) from now on: nobody (`muted`), only the member
        whose call id is `coach` (coaching: a whisper), or everyone (barge). The same request as
        `mute_member`, with coaching; GatewayError on a platform whose rooms cannot coach."""
        ...
