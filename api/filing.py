"""A request filed by another system, the same way for the JSON API and Open311: where it is, who
asks, checked field by field; then stored through the intake the phone line and console use."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from datetime import datetime

from api.errors import ApiError
from core import phones, pincodes, slots
from core.geo import distance_km
from core.settings import Settings
from core.text import REORDERS, lines, plain, reorders
from dispatch.intake import Filed, Intake, KeyReused, file_request, queue_follow_ups
from storage.models import Channel
from storage.runtime import Runtime

Problems = dict[str, str]  # field → what is wrong with it


@dataclass(frozen=True)
class Location:
    """What the client said of where the visit is, by field."""

    pincode: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    address: str | None = None


@dataclass(frozen=True)
class Filing:
    """A request another system asks for, every field already checked."""

    service: str
    place: pincodes.Place
    phone: str
    language: str
    name: str | None = None
    address: str | None = None
    description: str | None = None
    preferred_time: str | None = None
    slot: slots.Slot | None = None  # None: as soon as possible


def choose_slot(raw: str | None, settings: Settings, now: datetime) -> slots.Slot | str | None:
    """The open slot a client named by its key, None when it named none; for a key of no open slot
    (past, closed, too soon, nonsense), what is wrong, naming the slots open now."""
    if raw is None or not raw.strip():
        return None
    found = slots.find(settings, raw, now)
    if found is not None:
        return found
    open_now = [slot.key for slot in slots.upcoming(settings, now)]
    listed = ", ".join(open_now) if open_now else "none at this moment (leave it out: as soon as possible)"
    return f"{plain(raw, 40)!r} is not a slot open for booking (past, closed, too soon or unknown); open: {listed}"


def locate(where: Location, settings: Settings) -> pincodes.Place | Problems:
    """The place to send a worker: the PIN code's, at the client's point when it gave one; or the
    PIN code nearest the point; or the PIN code written in the address. Else what is wrong, by field."""
    state = settings.service_area.state
    has_point = where.latitude is not None or where.longitude is not None
    if has_point and (where.latitude is None or where.longitude is None):
        missing = "latitude" if where.latitude is None else "longitude"
        return {missing: "give latitude and longitude together"}
    if where.pincode:
        return _by_pincode(where, state)
    if where.latitude is not None and where.longitude is not None:
        near = pincodes.nearest(where.latitude, where.longitude, state)
        if near is None:
            return {"latitude": f"the point is not in the service area ({state.title()})"}
        return replace(near, latitude=where.latitude, longitude=where.longitude)
    written = pincodes.in_text(where.address or "")
    if written is not None:
        return _by_pincode(Location(pincode=written), state, field="address")
    if where.address:
        return {"address": "write the 6-digit PIN code in the address, or give pincode or latitude and longitude"}
    return {"pincode": "give the PIN code, latitude and longitude, or an address with its PIN code"}


def _by_pincode(where: Location, state: str, field: str = "pincode") -> pincodes.Place | Problems:
    pincode = "".join((where.pincode or "").split())
    if not pincodes.is_well_formed(pincode):
        return {field: "a PIN code has 6 digits and does not start with 0"}
    place = pincodes.lookup(pincode)
    if place is None:
        return {field: f"India Post does not know PIN code {pincode}"}
    if not place.in_state(state):
        return {field: f"PIN code {pincode} is in {place.state.title()}, outside the service area ({state.title()})"}
    if where.latitude is None or where.longitude is None:
        return place
    if place.latitude is not None and place.longitude is not None:
        away = distance_km(place.latitude, place.longitude, where.latitude, where.longitude)
        if away > pincodes.NEAR_DISTRICT_KM:  # swapped coordinates, or another address's point
            return {
                "latitude": f"the point is {away:,.0f} km from PIN code {pincode}: give the address's own "
                "point, or leave latitude and longitude out"
            }
    elif pincodes.nearest(where.latitude, where.longitude, state) is None:
        return {"latitude": f"the point is not in the service area ({state.title()})"}
    return replace(place, latitude=where.latitude, longitude=where.longitude)


def indian_phone(raw: str) -> str | None:
    """The citizen's number in E.164, if it is an Indian one (a worker must be able to ring it)."""
    number = phones.to_e164(raw[:40]) if raw.strip() else None
    return number if number is not None and number.startswith("+91") else None


def check_contact(raw_phone: str, settings: Settings, service: str) -> Problems:
    problems: Problems = {}
    if service not in settings.service_codes:
        problems["service"] = f"not a service of the helpline; one of {', '.join(sorted(settings.service_codes))}"
    if indian_phone(raw_phone) is None:
        problems["phone"] = "not a valid Indian phone number; the worker and the helpline ring the citizen on it"
    return problems


def reordering(texts: Mapping[str, str | None]) -> Problems:
    """The fields whose text would show agents and citizens something other than it says (the rule
    the worker import keeps too)."""
    return {field: REORDERS for field, text in texts.items() if text and reorders(text)}


def tidy(text: str | None, limit: int) -> str | None:
    return plain(text, limit) or None if text else None


def tidy_lines(text: str | None, limit: int) -> str | None:
    return lines(text)[:limit] or None if text else None


def idempotency_key(client: str, key: str) -> str:
    """The stored key: the client's name and a digest of its key, whole whatever their lengths (cut
    short, two long keys sharing a beginning would be one, and the second request never filed)."""
    return f"api:{hashlib.sha256(client.encode()).hexdigest()[:32]}:{hashlib.sha256(key.encode()).hexdigest()}"


def digest(filing: Filing, channel: Channel) -> str:
    """What a request files, whatever way it was written: its fields as checked and tidied."""
    fields = {**asdict(filing), "slot": filing.slot.key if filing.slot else None}
    if fields["slot"] is None:  # as digested before slots were booked: a client's retry still matches
        del fields["slot"]
    canonical = json.dumps({"channel": channel.value, **fields}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def file(runtime: Runtime, filing: Filing, *, channel: Channel, client: str, key: str | None) -> Filed:
    """Store the request (once per client and idempotency key), then text the citizen its number and
    dispatch it. The key sent again with another request is refused (422), as payment APIs do."""
    actor = f"api:{client}"
    intake = Intake(
        service=filing.service,
        place=filing.place,
        phone=filing.phone,
        language=filing.language,
        channel=channel,
        actor=actor,
        filed_at=runtime.clock.now(),
        idempotency_key=idempotency_key(client, key) if key else None,
        idempotency_digest=digest(filing, channel) if key else None,
        address_note=filing.address,
        preferred_time=filing.preferred_time,
        slot=filing.slot,
        description=filing.description,
        contact_name=filing.name,
        filed_by=actor,
    )
    try:
        filed = file_request(runtime.engine, runtime.settings, intake)
    except KeyReused:
        raise ApiError(
            422,
            "the Idempotency-Key was used for another request: send a new key for a new request",
            {"Idempotency-Key": "used for another request"},
            code="idempotency_key_reused",
        ) from None
    queue_follow_ups(runtime.redis, filed)
    return filed
