"""The telephony seam: every SMS and call, in or out, crosses it.

`port` is what the rest of the helpline depends on (`Telephony`, `GatewayError`); each platform is
a subpackage beside it (`twilio/`) with its REST client, call-document rendering and signature
check. `telephony(settings)` picks the configured one."""

from __future__ import annotations

from core.settings import Settings
from telephony.port import Telephony


def telephony(settings: Settings) -> Telephony:
    """The gateway the settings describe: Twilio, or the API at twilio.api_base_url (the sandbox)."""
    from telephony.twilio.rest import TwilioTelephony

    return TwilioTelephony(settings)
