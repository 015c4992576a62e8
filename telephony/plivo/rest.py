"""`Telephony` over Plivo's REST API (or a Plivo-compatible one at plivo.api_base_url), with the DLT
parameters Plivo's Message API takes for SMS toward India."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any, TypeVar

import plivo
import requests
from plivo import exceptions
from requests.adapters import HTTPAdapter

from core import phones
from core.settings import Settings
from telephony.http import TimedOut, Unreachable
from telephony.media import audio_of
from telephony.plivo.http import PLIVO_API, LeanRestClient
from telephony.port import DEFAULT_RING_TIMEOUT, GatewayError, is_retryable_status

DEFAULT_TIMEOUT = 10.0  # seconds for one REST request: a hung API must not hang a job
AUTH_ID_ENV = "PLIVO_AUTH_ID"
AUTH_TOKEN_ENV = "PLIVO_AUTH_TOKEN"  # noqa: S105 (a variable name)
# The HTTP statuses Plivo documents for its API (plivo.com/docs/messaging/api/response): each of the
# SDK's exceptions stands for one of them; a status without its own class is named in the message.
STATUS_OF = {
    exceptions.ValidationError: 400,
    exceptions.AuthenticationError: 401,
    exceptions.ForbiddenError: 403,
    exceptions.ResourceNotFoundError: 404,
    exceptions.InvalidRequestError: 405,
    exceptions.PlivoServerError: 500,
}
STATUS_IN_MESSAGE = re.compile(r"status code (\d{3})")
PLIVO_MEDIA = "https://media.plivo.com/"  # where Plivo serves recordings (a RecordUrl's host)
RECORDING_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

log = logging.getLogger(__name__)
T = TypeVar("T")


class _Elsewhere(HTTPAdapter):
    """Sends what the SDK addresses to api.plivo.com to another base URL (the sandbox, a test's API)."""

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self.base_url = base_url.rstrip("/") + "/"

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        assert request.url is not None
        request.url = self.base_url + request.url[len(PLIVO_API) :]
        return super().send(request, *args, **kwargs)


def plivo_client(auth_id: str, auth_token: str, *, api_base_url: str | None, timeout: float) -> plivo.RestClient:
    """The real REST client, with a request timeout and, when configured, another API base URL: its
    JSON requests over `telephony.http` (`LeanRestClient`), the rest through its `requests` sessions."""
    if timeout <= 0:
        raise ValueError("the Plivo request timeout must be positive")
    client = LeanRestClient(auth_id, auth_token, timeout=timeout, api_base_url=api_base_url)
    if api_base_url:
        for session in (client.session, client.multipart_session):
            session.trust_env = False  # proxies from the environment would reroute a local URL
            session.mount(PLIVO_API, _Elsewhere(api_base_url))
    return client


class PlivoTelephony:
    """`Telephony` through Plivo's REST API: SMS with the DLT entity, header and template id; calls
    with answer and hangup URLs and a ring timeout."""

    def __init__(self, settings: Settings, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        config = settings.plivo
        self.timeout = timeout
        self.from_number = config.from_number
        self.dlt_entity_id = config.dlt_entity_id
        self.dlt_header = config.dlt_header
        auth_id, token = config.auth_id, config.auth_token
        self._missing = [env for env, value in ((AUTH_ID_ENV, auth_id), (AUTH_TOKEN_ENV, token)) if not value]
        self._client: plivo.RestClient | None = None
        self._credentials = (auth_id or "", token or "")
        self._media = (config.api_base_url or PLIVO_MEDIA).rstrip("/")
        if auth_id and token:
            self._client = plivo_client(auth_id, token, api_base_url=config.api_base_url, timeout=timeout)

    def delete_recording(self, recording_id: str) -> None:
        """The SDK's recordings.delete: DELETE /v1/Account/{auth_id}/Recording/{id}/
        (plivo.com/docs/voice/api/recording/delete-a-recording): 204; a 404 is a recording deleted before."""
        _check_id(recording_id)
        try:
            self._request("delete a recording", lambda client: client.recordings.delete(recording_id))
        except GatewayError as error:
            if error.status != 404:
                raise

    def recording_audio(self, recording_id: str) -> tuple[bytes, str]:
        """The recording's MP3 at Plivo's media URL, …/v1/Account/{auth_id}/Recording/{id}.mp3, with the
        account's credentials (asked for when the account keeps its recordings private)."""
        _check_id(recording_id)
        auth_id, token = self._credentials
        url = f"{self._media}/v1/Account/{auth_id}/Recording/{recording_id}.mp3"
        session = requests.Session()
        session.trust_env = False  # proxies from the environment would reroute a local URL
        return audio_of(
            self._request(
                "fetch a recording",
                lambda _client: session.get(url, auth=(auth_id, token), timeout=self.timeout, stream=True),
            )
        )

    def send_sms(
        self, to: str, body: str, *, status_callback: str | None = None, dlt_template_id: str | None = None
    ) -> str:
        """Send `body` to `to` from the DLT header; return the message UUID its delivery reports carry."""
        if not (self.dlt_header and self.dlt_entity_id and dlt_template_id):
            raise GatewayError(
                "cannot send an SMS on Plivo without its DLT header, entity id and template id "
                "(plivo.dlt_header, plivo.dlt_entity_id in config.yaml, and the template's dlt_template_id)",
                retryable=False,
            )
        header, entity = self.dlt_header, self.dlt_entity_id
        answer = self._request(
            "send an SMS",
            lambda client: client.messages.create(
                dst=_digits(to),
                text=body,
                src=header,
                url=status_callback,
                method="POST",
                dlt_entity_id=entity,
                dlt_template_id=dlt_template_id,
            ),
        )
        uuids = getattr(answer, "message_uuid", None) or []
        return _id(uuids[0] if isinstance(uuids, list) and uuids else None, "message_uuid")

    def place_call(
        self, to: str, url: str, *, status_callback: str | None = None, timeout: int = DEFAULT_RING_TIMEOUT
    ) -> str:
        """Ring `to`; when answered Plivo fetches Plivo XML from `url`, and posts the call's end to
        `status_callback` (its hangup URL). Return the request UUID."""
        if not self.from_number:
            raise GatewayError("cannot place a call: set plivo.from_number in config.yaml", retryable=False)
        caller = _digits(self.from_number)
        answer = self._request(
            "place a call",
            lambda client: client.calls.create(
                from_=caller,
                to_=_digits(to),
                answer_url=url,
                answer_method="POST",
                hangup_url=status_callback,
                hangup_method="POST",
                ring_timeout=timeout,
            ),
        )
        return _id(getattr(answer, "request_uuid", None), "request_uuid")

    def redirect_call(self, call_id: str, url: str) -> None:
        """Transfer the call's A leg, POST /v1/Account/{auth_id}/Call/{uuid}/ with `legs=aleg` and
        `aleg_url` (plivo.com/docs/voice/api/call/transfer-a-call): it runs the XML at `url` at once."""
        _check_call(call_id)
        self._request(
            "move a call",
            lambda client: client.calls.update(call_id, legs="aleg", aleg_url=url, aleg_method="POST"),
        )

    def hold_member(self, room: str, member: str, hold: bool, music_url: str) -> None:
        """Plivo's conference has no hold: the member is made deaf (hears nobody), muted (heard by nobody)
        and played `music_url`, and back: …/Conference/{name}/Member/{id}/Deaf/, /Mute/, /Play/
        (plivo.com/docs/voice/api/conference/member/deaf-a-member, mute-a-member, play-audio-to-a-member;
        DELETE undoes each)."""
        _check_member(member)
        if hold:
            steps: list[Callable[[plivo.RestClient], Any]] = [
                lambda client: client.conferences.member_deaf(room, member),
                lambda client: client.conferences.member_mute(room, member),
                lambda client: client.conferences.member_play(room, member, music_url),
            ]
        else:
            steps = [
                lambda client: client.conferences.member_play_stop(room, member),
                lambda client: client.conferences.member_mute_stop(room, member),
                lambda client: client.conferences.member_deaf_stop(room, member),
            ]
        undo = {
            True: [
                lambda client: client.conferences.member_deaf_stop(room, member),
                lambda client: client.conferences.member_mute_stop(room, member),
            ],
            False: [
                lambda client: client.conferences.member_play(room, member, music_url),
                lambda client: client.conferences.member_mute(room, member),
            ],
        }[hold]
        for done, step in enumerate(steps):
            try:
                self._request("hold a caller" if hold else "take a caller off hold", step)
            except GatewayError:
                self._undo(undo[:done])  # the call as it was, as far as Plivo lets it be
                raise

    def _undo(self, steps: list[Callable[[plivo.RestClient], Any]]) -> None:
        for step in reversed(steps):
            try:
                self._request("undo a change to a room", step)
            except GatewayError:
                log.warning("could not undo a change to a conference member")

    def mute_member(self, room: str, member: str, muted: bool) -> None:
        """POST (DELETE to undo) …/Conference/{name}/Member/{id}/Mute/
        (plivo.com/docs/voice/api/conference/member/mute-a-member)."""
        _check_member(member)
        if muted:
            self._request("mute a member", lambda client: client.conferences.member_mute(room, member))
        else:
            self._request("unmute a member", lambda client: client.conferences.member_mute_stop(room, member))

    def monitor_member(self, room: str, member: str, *, muted: bool, coach: str = "") -> None:
        """Muted or heard by all, as `mute_member`. Plivo's conference members cannot coach: only its
        Multiparty Call API can (plivo.com/docs/voice/api/multiparty-call/participants/update-participant-state)."""
        if coach:
            raise GatewayError("cannot coach on Plivo: its conference rooms have no coach", retryable=False)
        self.mute_member(room, member, muted)

    def pause_recording(self, room: str) -> None:
        """The SDK's conferences.record_stop: DELETE /v1/Account/{auth_id}/Conference/{room}/Record/
        (plivo.com/docs/voice/api/conference/record-conference): 204; the recording so far is posted
        to its callback and kept, and what is said next is not recorded."""
        self._request("pause a room's recording", lambda client: client.conferences.record_stop(room))

    def resume_recording(self, room: str, *, recording_callback: str) -> None:
        """The SDK's conferences.record: POST /v1/Account/{auth_id}/Conference/{room}/Record/ with
        file_format mp3 and callback_url, posted record_url, recording_id and recording_duration when
        the new recording ends (the same page): a room paused and resumed has several recordings."""
        self._request(
            "resume a room's recording",
            lambda client: client.conferences.record(
                room, file_format="mp3", callback_url=recording_callback, callback_method="POST"
            ),
        )

    def _request(self, action: str, send: Callable[[plivo.RestClient], T]) -> T:
        """Run one REST request, turning every way it can fail into a GatewayError."""
        if self._client is None:
            missing = " and ".join(self._missing)
            message = f"cannot {action}: Plivo credentials are missing; set {missing} in the environment"
            raise GatewayError(message, retryable=False)
        try:
            return send(self._client)
        except exceptions.PlivoRestError as error:
            raise _refused(action, error) from error
        except (requests.Timeout, TimedOut) as error:
            message = f"cannot {action}: Plivo did not answer within {self.timeout}s"
            raise GatewayError(message, retryable=True) from error
        except (requests.RequestException, Unreachable) as error:
            raise GatewayError(f"cannot {action}: Plivo is unreachable ({error})", retryable=True) from error
        except (ValueError, AttributeError) as error:
            raise GatewayError(f"cannot {action}: unexpected answer from Plivo ({error})", retryable=False) from error


def _refused(action: str, error: exceptions.PlivoRestError) -> GatewayError:
    """Plivo answered with an error (or the SDK refused the request before sending it): 429 and 5xx
    may pass later, any other 4xx will not."""
    detail = phones.mask_all(str(error))[:300]
    status = next((code for kind, code in STATUS_OF.items() if isinstance(error, kind)), None)
    if status is None:
        found = STATUS_IN_MESSAGE.search(str(error))
        status = int(found.group(1)) if found else None
    if status is None:  # the SDK's own checks (PlivoXMLError and the like): the request itself is wrong
        return GatewayError(f"cannot {action}: refused by the Plivo SDK: {detail}", retryable=False)
    return GatewayError(
        f"cannot {action}: Plivo answered HTTP {status}: {detail}", retryable=is_retryable_status(status), status=status
    )


def _check_call(call_id: str) -> None:
    if not RECORDING_ID.match(call_id):
        raise GatewayError(f"not a Plivo CallUUID: {call_id[:40]!r}", retryable=False)


def _check_member(member: str) -> None:
    if not (member.isascii() and member.isdigit() and len(member) < 12):
        raise GatewayError(f"not a Plivo ConferenceMemberID: {member[:40]!r}", retryable=False)


def _check_id(recording_id: str) -> None:
    if not RECORDING_ID.match(recording_id):
        raise GatewayError(f"not a Plivo RecordingID: {recording_id[:40]!r}", retryable=False)


def _digits(number: str) -> str:
    """Plivo's numbers: the country code and number, digits only (E.164 without its +)."""
    return number.lstrip("+")


def _id(value: Any, name: str) -> str:
    if not value or not isinstance(value, str):
        # Plivo may have accepted the request: not retryable, a retry could send twice.
        raise GatewayError(f"Plivo accepted the request but returned no {name}", retryable=False)
    return value
