"""A recording's audio as a platform serves it: read no further than a recording of ours can be."""

from __future__ import annotations

import requests

from telephony.port import MAX_RECORDING_BYTES, GatewayError, is_retryable_status


def audio_of(answer: requests.Response) -> tuple[bytes, str]:
    """A recording's bytes, read no further than a recording of ours can be."""
    with answer:
        if answer.status_code != 200:
            message = f"cannot fetch a recording: the platform answered HTTP {answer.status_code}"
            raise GatewayError(message, retryable=is_retryable_status(answer.status_code), status=answer.status_code)
        data = answer.raw.read(MAX_RECORDING_BYTES + 1, decode_content=True)
    if len(data) > MAX_RECORDING_BYTES:
        raise GatewayError("cannot fetch a recording: larger than any recording of the helpline's", retryable=False)
    return data, answer.headers.get("Content-Type", "audio/mpeg").split(";")[0]
