"""`Telephony` over Twilio's REST API (or a Twilio-compatible one at twilio.api_base_url)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.rest import Client

from core import phones
from core.settings import Settings
from telephony.http import TimedOut, Unreachable
from telephony.media import audio_of
from telephony.port import DEFAULT_RING_TIMEOUT, GatewayError, is_retryable_status
from telephony.twilio.http import LeanHttpClient

TWILIO_API = "https://api.twilio.com"
RECORDING_SID = re.compile(r"^RE[0-9a-f]{32}$")
CALL_SID = re.compile(r"^CA[0-9a-fA-F]{32}$")
DEFAULT_TIMEOUT = 10.0  # seconds for one REST request: a hung API must not hang a job
ACCOUNT_SID_ENV = "TWILIO_ACCOUNT_SID"
AUTH_TOKEN_ENV = "TWILIO_AUTH_TOKEN"  # noqa: S105 (a variable name)

T = TypeVar("T")


def twilio_client(account_sid: str, auth_token: str, *, api_base_url: str | None, timeout: float) -> Client:
    """The real REST client, with a request timeout and, when configured, another API base URL."""
    if timeout <= 0:
        raise ValueError("the Twilio request timeout must be positive")
    # A configured API is reached directly: proxies from the environment would reroute it.
    client = Client(account_sid, auth_token, http_client=LeanHttpClient(timeout=timeout, direct=bool(api_base_url)))
    if api_base_url:
        # Every Messages/Calls URL is the Api domain's base_url + "/2010-04-01/Accounts/...".
        client.api.base_url = api_base_url.rstrip("/")
        # TWILIO_EDGE / TWILIO_REGION would rewrite the host of this literal URL.
        client.edge = client.region = None
    return client


class TwilioTelephony:
    """`Telephony` through Twilio's REST API (or a Twilio-compatible one at twilio.api_base_url)."""

    def __init__(self, settings: Settings, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        twilio = settings.twilio
        self.timeout = timeout
        self.from_number = twilio.from_number
        self.messaging_service_sid = twilio.messaging_service_sid
        sid, token = twilio.account_sid, twilio.auth_token
        self._missing = [env for env, value in ((ACCOUNT_SID_ENV, sid), (AUTH_TOKEN_ENV, token)) if not value]
        self._client: Client | None = None
        self._credentials = (sid or "", token or "")
        self._api = (twilio.api_base_url or TWILIO_API).rstrip("/")
        self._media = requests.Session()  # a recording's audio, streamed: not the SDK's requests
        self._media.trust_env = not twilio.api_base_url  # proxies from the environment would reroute a local URL
        if sid and token:
            self._client = twilio_client(sid, token, api_base_url=twilio.api_base_url, timeout=timeout)

    def delete_recording(self, recording_id: str) -> None:
        """DELETE /2010-04-01/Accounts/{AC}/Recordings/{RE}.json (twilio.com/docs/voice/api/recording):
        204; a 404 is a recording deleted before."""
        _check_sid(recording_id)
        try:
            self._request("delete a recording", lambda client: client.recordings(recording_id).delete())
        except GatewayError as error:
            if error.status != 404:
                raise

    def recording_audio(self, recording_id: str) -> tuple[bytes, str]:
        """The recording's MP3 at …/Recordings/{RE}.mp3, fetched with the account's credentials (Twilio
        asks for them when the account protects its media with HTTP auth)."""
        _check_sid(recording_id)
        sid, token = self._credentials
        url = f"{self._api}/2010-04-01/Accounts/{sid}/Recordings/{recording_id}.mp3"
        return audio_of(
            self._request("fetch a recording", lambda _client: _get(self._media, url, (sid, token), self.timeout))
        )

    def send_sms(
        self, to: str, body: str, *, status_callback: str | None = None, dlt_template_id: str | None = None
    ) -> str:
        """Send `body` to `to`; return the MessageSid that Twilio's status callbacks will carry. Twilio's
        API takes no DLT template id: its Messaging Service maps the registered templates itself."""
        del dlt_template_id
        sender = self._sms_sender()
        message = self._request(
            "send an SMS",
            lambda client: client.messages.create(to=to, body=body, status_callback=status_callback, **sender),
        )
        return _sid(message, "MessageSid")

    def place_call(
        self, to: str, url: str, *, status_callback: str | None = None, timeout: int = DEFAULT_RING_TIMEOUT
    ) -> str:
        """Ring `to`; when answered Twilio fetches TwiML from `url`. Return the CallSid."""
        if not self.from_number:
            raise GatewayError("cannot place a call: set twilio.from_number in config.yaml", retryable=False)
        caller = self.from_number
        call = self._request(
            "place a call",
            lambda client: client.calls.create(
                to=to, from_=caller, url=url, status_callback=status_callback, timeout=timeout
            ),
        )
        return _sid(call, "CallSid")

    def redirect_call(self, call_id: str, url: str) -> None:
        """POST …/Calls/{CA}.json with Url (twilio.com/docs/voice/api/call-resource#update-a-call-resource):
        the live call, in a queue or not, runs the TwiML at `url` at once."""
        _check_call(call_id)
        self._request("move a call", lambda client: client.calls(call_id).update(url=url, method="POST"))

    def hold_member(self, room: str, member: str, hold: bool, music_url: str) -> None:
        """POST …/Conferences/{CF}/Participants/{CA}.json with Hold and HoldUrl
        (twilio.com/docs/voice/api/conference-participant-resource#update-a-participant-resource): a held
        participant hears HoldUrl (an MP3, fetched with HoldMethod GET) and is not heard."""
        _check_call(member)
        held = {"hold": True, "hold_url": music_url, "hold_method": "GET"} if hold else {"hold": False}
        self._participant("hold a caller", room, member, held)

    def mute_member(self, room: str, member: str, muted: bool) -> None:
        """The same Participant update with Muted: the room does not hear them, they hear the room."""
        _check_call(member)
        self._participant("mute an agent", room, member, {"muted": muted})

    def monitor_member(self, room: str, member: str, *, muted: bool, coach: str = "") -> None:
        """The same Participant update with Muted, Coaching and CallSidToCoach: a coaching participant is
        heard by that call alone (twilio.com/docs/voice/api/conference-participant-resource, "Update")."""
        _check_call(member)
        coaching: dict[str, Any] = {"coaching": False}
        if coach:
            _check_call(coach)
            coaching = {"coaching": True, "call_sid_to_coach": coach}
        self._participant("monitor a call", room, member, {"muted": muted, **coaching})

    def pause_recording(self, room: str) -> None:
        """The room's current recording paused, skipping what is said meanwhile: POST
        …/Conferences/{CF}/Recordings/Twilio.CURRENT.json, Status=paused, PauseBehavior=skip
        (twilio.com/docs/voice/api/conference-recording-resource#update-a-conferencerecording-resource)."""
        self._room_recording(room, "paused")

    def resume_recording(self, room: str, *, recording_callback: str) -> None:
        """The same recording goes on (Status=in-progress): its status callback, set when the room
        opened, still reports it."""
        del recording_callback
        self._room_recording(room, "in-progress")

    def _participant(self, action: str, room: str, call_id: str, change: dict[str, Any]) -> None:
        self._in_room(action, room, lambda conference: conference.participants(call_id).update(**change))

    def _room_recording(self, room: str, status: str) -> None:
        options = {"status": status, **({"pause_behavior": "skip"} if status == "paused" else {})}
        self._in_room(
            f"set a room's recording {status}",
            room,
            lambda conference: conference.recordings("Twilio.CURRENT").update(**options),
        )

    def _in_room(self, action: str, room: str, change: Callable[[Any], object]) -> None:
        """Twilio names a conference (its participants, its recording) by its sid: the room is found
        by its FriendlyName among the conferences in progress
        (twilio.com/docs/voice/api/conference-resource#read-multiple-conference-resources)."""

        def send(client: Client) -> None:
            try:
                found = client.conferences.list(friendly_name=room, status="in-progress", limit=1)
            except TwilioRestException:
                raise
            except TwilioException as error:  # a list's page refused: ("Unable to fetch page", its response)
                raise _page_refused(f"{action}: find the room", error) from error
            if not found:
                raise GatewayError(f"cannot {action}: the room is not in progress", retryable=False, status=404)
            change(client.conferences(str(found[0].sid)))

        self._request(action, send)

    def _sms_sender(self) -> dict[str, str]:
        """A Messaging Service picks the sender itself (and India's DLT header); else our number."""
        if self.messaging_service_sid:
            return {"messaging_service_sid": self.messaging_service_sid}
        if self.from_number:
            return {"from_": self.from_number}
        raise GatewayError(
            "cannot send an SMS: set twilio.messaging_service_sid or twilio.from_number in config.yaml",
            retryable=False,
        )

    def _request(self, action: str, send: Callable[[Client], T]) -> T:
        """Run one REST request, turning every way it can fail into a GatewayError."""
        if self._client is None:
            missing = " and ".join(self._missing)
            message = f"cannot {action}: Twilio credentials are missing; set {missing} in the environment"
            raise GatewayError(message, retryable=False)
        try:
            return send(self._client)
        except (TwilioRestException, TwilioServiceException) as error:
            raise _refused(action, error) from error
        except (requests.Timeout, TimedOut) as error:
            message = f"cannot {action}: Twilio did not answer within {self.timeout}s"
            raise GatewayError(message, retryable=True) from error
        except (requests.RequestException, Unreachable) as error:
            raise GatewayError(f"cannot {action}: Twilio is unreachable ({error})", retryable=True) from error
        except (TwilioException, ValueError) as error:
            raise GatewayError(f"cannot {action}: unexpected answer from Twilio ({error})", retryable=False) from error


def _page_refused(action: str, error: TwilioException) -> GatewayError:
    """A page of a list that Twilio refused: the SDK hands over the response, whose status says
    whether to try again."""
    response = error.args[1] if len(error.args) > 1 else None
    status = getattr(response, "status_code", None)
    if not isinstance(status, int):
        return GatewayError(f"cannot {action}: unexpected answer from Twilio ({error})", retryable=False)
    return GatewayError(
        f"cannot {action}: Twilio answered HTTP {status}", retryable=is_retryable_status(status), status=status
    )


def _check_call(call_id: str) -> None:
    if not CALL_SID.match(call_id):
        raise GatewayError(f"not a Twilio CallSid: {call_id[:40]!r}", retryable=False)


def _check_sid(recording_id: str) -> None:
    if not RECORDING_SID.match(recording_id):
        raise GatewayError(f"not a Twilio RecordingSid: {recording_id[:40]!r}", retryable=False)


def _get(session: requests.Session, url: str, auth: tuple[str, str], timeout: float) -> requests.Response:
    return session.get(url, auth=auth, timeout=timeout, stream=True)


def _refused(action: str, error: TwilioRestException | TwilioServiceException) -> GatewayError:
    """Twilio answered with an error: keep its status and error code for the job and the logs."""
    status = int(error.status)
    # Without an error JSON the library puts the HTTP status where Twilio's code would be.
    code = error.code if error.code and error.code != status else None
    detail = phones.mask_all(str(error.msg if isinstance(error, TwilioRestException) else error.detail or error.title))
    return GatewayError(
        f"cannot {action}: Twilio answered HTTP {status}" + (f", error {code}" if code else "") + f": {detail}",
        retryable=is_retryable_status(status),
        code=code,
        status=status,
    )


def _sid(resource: Any, name: str) -> str:
    sid = getattr(resource, "sid", None)
    if not sid:
        # Twilio may have accepted the request: not retryable, a retry could send twice.
        raise GatewayError(f"Twilio accepted the request but returned no {name}", retryable=False)
    return str(sid)
