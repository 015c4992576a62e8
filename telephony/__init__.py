"""The telephony seam: every SMS and call, in or out, crosses it.

`port` is what the rest of the helpline depends on to send (`Telephony`, `GatewayError`); `call`
is what a platform's webhooks say and are answered with (`CallTurn`, the `Instruction`s, and
`CallPlatform`, which reads and writes them in the platform's own language). Each platform is a
subpackage beside them (`twilio/`) with its REST client, webhook forms and documents, and
signature check. `telephony(settings)` and `call_platform(settings)` pick the configured one."""

from __future__ import annotations

from core.settings import Settings
from telephony.call import CallPlatform
from telephony.port import Telephony


def telephony(settings: Settings) -> Telephony:
    """The gateway the settings describe: Twilio, or the API at twilio.api_base_url (the sandbox)."""
    from telephony.twilio.rest import TwilioTelephony

    return TwilioTelephony(settings)


def call_platform(_settings: Settings) -> CallPlatform:
    """The platform whose webhooks the helpline answers: Twilio (the only one configured today)."""
    from telephony.twilio.twiml import TwilioWebhooks

    return TwilioWebhooks()
