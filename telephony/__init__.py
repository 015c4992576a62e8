"""The telephony seam: every SMS and call, in or out, crosses it.

`port` is what the rest of the helpline depends on to send (`Telephony`, `GatewayError`); `call`
is what a platform's webhooks say and are answered with (`CallTurn`, the `Instruction`s, and
`CallPlatform`, which reads and writes them in the platform's own language). Each platform is a
subpackage beside them (`twilio/`, `plivo/`) with its REST client, webhook forms and documents,
and signature check. `telephony(settings)`, `call_platform(settings)`,
`webhook_url` and `webhook_signed` follow the configured one (`telephony.platform`)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from core.settings import Settings
from telephony.browser import BrowserToken, ClientLeg
from telephony.call import CallPlatform
from telephony.port import CallControl, RecordingStore, Telephony


def telephony(settings: Settings) -> Telephony:
    """The gateway the settings describe (telephony.platform): Twilio or Plivo, or the API at their
    api_base_url (a sandbox)."""
    if settings.telephony.platform == "plivo":
        from telephony.plivo.rest import PlivoTelephony

        return PlivoTelephony(settings)
    from telephony.twilio.rest import TwilioTelephony

    return TwilioTelephony(settings)


def call_control(settings: Settings, *, timeout: float = 10.0) -> CallControl:
    """The configured platform's REST control of live calls and conference rooms; `timeout`: seconds
    one request may take (a webhook waiting on it must still answer in time)."""
    if settings.telephony.platform == "plivo":
        from telephony.plivo.rest import PlivoTelephony

        return PlivoTelephony(settings, timeout=timeout)
    from telephony.twilio.rest import TwilioTelephony

    return TwilioTelephony(settings, timeout=timeout)


def recording_store(settings: Settings, platform: str) -> RecordingStore:
    """The recordings kept on `platform` (the one a recording was made on, which may not be the
    configured one any more), through that platform's REST client."""
    if platform == "plivo":
        from telephony.plivo.rest import PlivoTelephony

        return PlivoTelephony(settings)
    from telephony.twilio.rest import TwilioTelephony

    return TwilioTelephony(settings)


def call_platform(settings: Settings) -> CallPlatform:
    """The platform whose webhooks the helpline answers (telephony.platform)."""
    if settings.telephony.platform == "plivo":
        from telephony.plivo.xml import PlivoWebhooks

        return PlivoWebhooks(settings.public_url)
    from telephony.twilio.twiml import TwilioWebhooks

    return TwilioWebhooks()


def browser_ready(settings: Settings) -> bool:
    """Whether agents can answer in the browser on the configured platform (its browser credentials set)."""
    platform = settings.plivo if settings.telephony.platform == "plivo" else settings.twilio
    return platform.browser_ready


def browser_token(settings: Settings, identity: str, now: int, ttl_s: int) -> BrowserToken:
    """The configured platform's token for an agent's softphone (Plivo's asked of its REST API)."""
    if settings.telephony.platform == "plivo":
        from telephony.plivo import browser as plivo_browser

        return plivo_browser.access_token(settings, identity, now, ttl_s)
    from telephony.twilio import browser as twilio_browser

    return twilio_browser.access_token(settings, identity, now, ttl_s)


def client_leg(settings: Settings, form: Any) -> ClientLeg:
    """The configured platform's webhook for a call an agent's browser placed, read."""
    if settings.telephony.platform == "plivo":
        from telephony.plivo import browser as plivo_browser

        return plivo_browser.client_leg(form)
    from telephony.twilio import browser as twilio_browser

    return twilio_browser.client_leg(form)


def our_number(settings: Settings) -> str | None:
    """The helpline's number the platform places calls from (the caller ID people see when it rings
    them, and when it puts a caller through to them); None when none is configured."""
    platform = settings.plivo if settings.telephony.platform == "plivo" else settings.twilio
    return platform.from_number


def webhook_url(settings: Settings, path: str) -> str:
    """The public URL of one of the configured platform's webhooks: `path` ("/voice", "/sms/status")
    under that platform's root (/twilio, /plivo)."""
    return f"{settings.public_url}/{settings.telephony.platform}{path}"


def webhook_signed(view: Callable[..., Any]) -> Callable[..., Any]:
    """The configured platform's signature check (and size limits) around a webhook view."""
    from telephony.plivo.signature import plivo_signed
    from telephony.twilio.signature import twilio_signed

    checks = {"twilio": twilio_signed(view), "plivo": plivo_signed(view)}

    @functools.wraps(view)
    def checked(*args: Any, **kwargs: Any) -> Any:
        from telephony.webhooks import this_app

        return checks[this_app().extensions["sewamitra"].settings.telephony.platform](*args, **kwargs)

    return checked
