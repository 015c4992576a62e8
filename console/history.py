"""How audit events, SMS and calls read on a request's timeline and in a worker's history, in the
console's language: every code in them (actions, statuses, actors, dispatch's reasons, templates)
passes through the catalogue; what people wrote (notes, reasons) stays as they wrote it."""

from __future__ import annotations

from console.labels import language
from console.labels import translate as t
from core import phones
from storage.audit import AuditAction
from storage.models import AuditEvent, CallLog, SmsLog


def who(actor: str, names: dict[str, str]) -> str:
    """A console user by name; 'dispatch', 'ivr', 'worker:12' in words."""
    if actor in names:
        return names[actor]
    if t(actor) != actor:
        return t(actor)
    kind, colon, rest = actor.partition(":")
    return f"{t(kind)}{colon}{rest}"


def request_event(event: AuditEvent, names: dict[str, str]) -> str:
    """'dispatch: offered (new → offered): first offer sent · worker 7'."""
    if event.action == AuditAction.REQUEST_CALL_BRIDGED:
        return bridged_call(event, names)
    if event.action == AuditAction.REQUEST_LEVEL_RAISED:
        return level_raised(event, names)
    what = t(event.action.replace("request.", "").replace(".", " "))
    change = f" ({t(event.from_status)} → {t(event.to_status)})" if event.from_status and event.to_status else ""
    why = f": {_reason(event)}" if event.reason else ""
    detail = event.detail if isinstance(event.detail, dict) else {}
    worker = detail.get("worker_id")
    extra = f" · {t('worker')} {worker}" if worker else ""
    if detail.get("rework_number"):  # the job redone names its rework visit
        extra += f" · {t('Rework')} {detail['rework_number']}"
    outcome = event.detail.get("outcome") if isinstance(event.detail, dict) else None
    extra += f" · {t('Outcome')}: {t(str(outcome))}" if outcome else ""
    return f"{who(event.actor, names)}: {what}{change}{why}{extra}"


def level_raised(event: AuditEvent, names: dict[str, str]) -> str:
    """'system: up the escalation ladder (level 1 → 2, district_officer): unassigned'."""
    detail = event.detail if isinstance(event.detail, dict) else {}
    rungs = f"{t('level')} {detail.get('from_level', '?')} → {detail.get('to_level', '?')}"
    whose = t(str(detail.get("who", "")))
    return f"{who(event.actor, names)}: {t('level_raised')} ({rungs}, {whose}): {t(event.reason or '')}"


def _reason(event: AuditEvent) -> str:
    """Why, in the console's language: a citizen's reason from `changes.reasons` carries its Hindi (what
    an agent added to it stays as they wrote it); any other reason through the catalogue."""
    reason = event.reason or ""
    detail = event.detail if isinstance(event.detail, dict) else {}
    if event.action == AuditAction.REQUEST_RESCHEDULED and "from_slot" in detail:  # "asap" in words
        return f"{t(str(detail['from_slot']))} → {detail.get('to_slot', '')}"
    hindi = detail.get("reason_hi")
    if isinstance(hindi, str) and hindi and language() == "hi":
        added = reason.partition(": ")[2]
        return f"{hindi}: {added}" if added else hindi
    return t(reason)


def bridged_call(event: AuditEvent, names: dict[str, str]) -> str:
    """'worker:7: call through the helpline (worker → citizen): completed, 42 s · worker 7': who rang
    whom and for how long, never a number."""
    detail = event.detail if isinstance(event.detail, dict) else {}
    parties = f" ({t(str(detail.get('from', '')))} → {t(str(detail.get('to', '')))})" if detail.get("from") else ""
    seconds = detail.get("seconds", 0)
    worker = detail.get("worker_id")
    extra = f" · {t('worker')} {worker}" if worker else ""
    how = f"{t(event.reason or '')}, {seconds} {t('s')}"
    return f"{who(event.actor, names)}: {t('call_bridged')}{parties}: {how}{extra}"


def worker_event(event: AuditEvent) -> str:
    """'worker.verified · pending → verified', the statuses as words."""
    line = t(event.action)
    if event.from_status or event.to_status:
        line += f" · {t(event.from_status or '—')} → {t(event.to_status or '—')}"
    return line


def sms(message: SmsLog) -> str:
    """'SMS outbound 98•••••210 (offer)', without the text."""
    number = message.to_number if message.direction.value == "outbound" else message.from_number
    sms, template = t("SMS"), t(message.template or "reply")
    return f"{sms} {t(message.direction.value)} {phones.mask(number)} ({template})"


def call(log: CallLog) -> str:
    """'call inbound, 35 s, request_created'."""
    call, seconds = t("call"), t("s")
    return f"{call} {t(log.direction.value)}, {log.duration_s or 0} {seconds}, {t(log.outcome or '')}"


def callback(reason: str, note: str | None) -> str:
    callback = t("callback")
    return f"{callback} {t(reason)}: {note or ''}"
