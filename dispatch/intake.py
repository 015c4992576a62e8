"""A request comes in, from the phone line or an agent's console: stored with its caller, audited,
and its confirmation SMS recorded in the same transaction (sent after the commit)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, select

from storage import numbers, phones, pincodes
from storage.models import AuditEvent, Caller, Channel, RequestStatus, ServiceRequest, SmsLog
from storage.settings import Settings

MAX_NUMBER_DRAWS = 20


@dataclass(frozen=True)
class Intake:
    """What the request is and where; who asks for it is the caller's phone (None when withheld)."""

    service: str
    place: pincodes.Place
    phone: str | None
    language: str
    channel: Channel
    actor: str
    idempotency_key: str | None = None
    address_note: str | None = None
    preferred_time: str | None = None
    detail: tuple[tuple[str, str], ...] = ()


def new_request(session: Session, settings: Settings, intake: Intake) -> tuple[ServiceRequest, int | None]:
    """Store the request; return it and the id of its confirmation SMS (None: the phone cannot get one)."""
    caller = caller_for(session, intake.phone, intake.language) if intake.phone else None
    place = intake.place
    request = ServiceRequest(
        number=unused_number(session), idempotency_key=intake.idempotency_key, service_code=intake.service,
        pincode=place.pincode, district=place.district, latitude=place.latitude, longitude=place.longitude,
        address_note=intake.address_note, preferred_time=intake.preferred_time,
        caller_id=caller.id if caller else None, language=intake.language, channel=intake.channel,
    )  # fmt: skip
    session.add(request)
    session.flush()
    session.add(AuditEvent(actor=intake.actor, action="request.created", entity="service_request",
                           entity_id=request.id, to_status=RequestStatus.NEW.value,
                           detail=dict(intake.detail)))  # fmt: skip
    if intake.phone is None or phones.indian_mobile(intake.phone) is None:
        return request, None
    sms = SmsLog(to_number=intake.phone, body=confirmation_sms(settings, request), template="request_created",
                 status="pending", request_id=request.id)  # fmt: skip
    session.add(sms)
    session.flush()
    return request, sms.id


def confirmation_sms(settings: Settings, request: ServiceRequest) -> str:
    template = settings.sms.templates["request_created"]
    service = settings.service(request.service_code).name(request.language)
    return template.text(request.language).format(number=request.number, service=service)


def unused_number(session: Session) -> str:
    for _ in range(MAX_NUMBER_DRAWS):
        number = numbers.new_request_number()
        if session.exec(select(ServiceRequest.id).where(ServiceRequest.number == number)).first() is None:
            return number
    raise RuntimeError(f"no free request number found in {MAX_NUMBER_DRAWS} draws")


def caller_for(session: Session, phone: str, language: str) -> Caller:
    """The citizen with this number, added the first time they are seen."""
    caller = session.exec(select(Caller).where(Caller.phone == phone)).first()
    if caller is None:
        caller = Caller(phone=phone, language=language)
        session.add(caller)
        session.flush()
    return caller
