"""Engine events → TwiML. Pure: the same events always give the same document."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from twilio.twiml.voice_response import Gather as GatherVerb
from twilio.twiml.voice_response import VoiceResponse

from flows.engine import Effect, Enqueue, Event, Gather, Hangup, Say

STEP_PATH = "/twilio/voice/step"
QUEUE_WAIT_PATH = "/twilio/voice/queue/wait"
QUEUE_RESULT_PATH = "/twilio/voice/queue/result"


@dataclass(frozen=True)
class Voice:
    tts_language: str
    voice: str


Recordings = Callable[[str, str], str | None]  # (prompt, language) → URL of a recording, or None


def no_recordings(_prompt: str, _language: str) -> str | None:
    return None


def render(events: Iterable[Event], voices: Mapping[str, Voice], *, turn: int,
           recordings: Recordings = no_recordings) -> VoiceResponse:  # fmt: skip
    """The TwiML for what the engine said; a Gather always has a Redirect after it."""
    response = VoiceResponse()
    for event in events:
        if isinstance(event, Say):
            speak(response, event, voices, recordings)
        elif isinstance(event, Gather):
            _gather(response, event, voices, recordings, turn)
        elif isinstance(event, Enqueue):
            response.enqueue(
                event.queue, action=QUEUE_RESULT_PATH, method="POST", wait_url=QUEUE_WAIT_PATH, wait_url_method="POST"
            )
        elif isinstance(event, Hangup):
            response.hangup()
        elif isinstance(event, Effect):
            raise ValueError(f"effect {event.name} reached TwiML: the edge must perform it first")
    return response


def speak(parent: VoiceResponse | GatherVerb, say: Say, voices: Mapping[str, Voice], recordings: Recordings) -> None:
    url = recordings(say.prompt, say.language) if say.prompt else None
    if url:
        parent.play(url)
    else:
        voice = voices[say.language]
        parent.say(say.text, language=voice.tts_language, voice=voice.voice)


def _gather(response: VoiceResponse, event: Gather, voices: Mapping[str, Voice], recordings: Recordings,
            turn: int) -> None:  # fmt: skip
    action = f"{STEP_PATH}?turn={turn}"
    options: dict[str, object] = {"action": action, "method": "POST", "timeout": event.timeout,
                                  "finish_on_key": event.finish_on_key, "action_on_empty_result": True}  # fmt: skip
    if event.num_digits:
        options["num_digits"] = event.num_digits
    gather = response.gather(**options)
    for say in event.prompts:
        speak(gather, say, voices, recordings)
    response.redirect(action, method="POST")  # no input and no action: Twilio goes on to this
