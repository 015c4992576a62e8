"""Engine events → the call instructions a platform renders. Pure: the same events always give the
same instructions."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from flows import engine
from telephony import call

# Paths under the platform's voice webhook root (/twilio/voice, /plivo/voice).
STEP_PATH = "/step"
RECORD_PATH = "/record"
QUEUE_WAIT_PATH = "/queue/wait"
QUEUE_RESULT_PATH = "/queue/result"
DIALLED_PATH = "/dialled"  # a bridged call's end: the platform's dial action
DIAL_AGAIN_PATH = "/dial"  # a retried request whose answer was a dial: the number looked up again
# A step URL's argument carrying the call's session (ivr.turntoken); named so, the logs hide it.
TOKEN_ARG = "token"  # noqa: S105 (a name, not a secret)


@dataclass(frozen=True)
class Voice:
    tts_language: str
    voice: str


Recordings = Callable[[str, str], str | None]  # (prompt, language) → URL of a recording, or None


def no_recordings(_prompt: str, _language: str) -> str | None:
    return None


def instructions(
    events: Iterable[engine.Event],
    voices: Mapping[str, Voice],
    *,
    turn: int,
    root: str,
    recordings: Recordings = no_recordings,
    carried: str = "",
) -> list[call.Instruction]:
    """What the engine said, as instructions on the webhooks under `root`; a Gather always has a
    Redirect after it. `carried`: a token the step's URL carries (the call's session, `ivr.turntoken`)."""
    said: list[call.Instruction] = []
    for event in events:
        if isinstance(event, engine.Say):
            said.append(spoken(event, voices, recordings))
        elif isinstance(event, engine.Gather):
            action = f"{root}{STEP_PATH}?turn={turn}" + (f"&{TOKEN_ARG}={carried}" if carried else "")
            prompts = tuple(spoken(say, voices, recordings) for say in event.prompts)
            wait = call.Gather(prompts, action, event.timeout, event.finish_on_key, event.num_digits, on_empty=True)
            said.append(wait)
            said.append(call.Redirect(action))  # no input and no action: the platform goes on to this
        elif isinstance(event, engine.Record):
            action = f"{root}{RECORD_PATH}?turn={turn}"
            said.append(call.Record(action, event.max_length, event.timeout, event.finish_on_key, event.beep))
            said.append(call.Redirect(f"{action}&empty=1"))  # no recording made: the platform goes on to this
        elif isinstance(event, engine.Enqueue):
            said.append(call.Enqueue(event.queue, wait_url=root + QUEUE_WAIT_PATH, action=root + QUEUE_RESULT_PATH))
        elif isinstance(event, engine.Hangup):
            said.append(call.Hangup())
        elif isinstance(event, engine.Effect):
            raise ValueError(f"effect {event.name} reached the call: the edge must perform it first")
        elif isinstance(event, engine.Dial):
            raise ValueError(f"a dial to the {event.party} reached the call: the edge must look up the number first")
    return said


def spoken(say: engine.Say, voices: Mapping[str, Voice], recordings: Recordings) -> call.Say | call.Play:
    """A recording of the prompt when there is one, else the text in the language's voice; audio
    the flow names itself (a caller's recording) as it is."""
    if say.url:
        return call.Play(say.url)
    url = recordings(say.prompt, say.language) if say.prompt else None
    if url:
        return call.Play(url)
    voice = voices[say.language]
    return call.Say(say.text, voice.tts_language, voice.voice)


def queued_by_app(said: Iterable[call.Instruction], root: str) -> list[call.Instruction]:
    """For a platform without queue verbs: the helpline keeps the queue. Entering it is going to its
    wait document (which ends by coming back to itself), leaving it is going to the queue's result,
    which hears how from `result`. Whatever followed is unreachable, as after an Enqueue."""
    kept: list[call.Instruction] = []
    for instruction in said:
        if isinstance(instruction, call.Enqueue):
            return [*kept, call.Redirect(instruction.wait_url)]
        if isinstance(instruction, call.Leave):
            return [*kept, call.Redirect(f"{root}{QUEUE_RESULT_PATH}?result=leave")]
        kept.append(instruction)
    return kept
