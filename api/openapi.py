"""The OpenAPI 3.1 description of /api/v1, Open311 GeoReport v2 and /healthz, served at
/api/v1/openapi.json. Bodies and answers are the models in api/schemas.py, so what the document
promises is what the views check and send."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from api import schemas
from core.ids import MAX_ID
from core.settings import Settings
from storage.models import RequestStatus, VerificationStatus

REF = "#/components/schemas/{model}"
INPUTS: tuple[type[BaseModel], ...] = (
    schemas.RequestCreate,
    schemas.Cancellation,
    schemas.Reschedule,
    schemas.WorkerCreate,
    schemas.Availability,
)
OUTPUTS: tuple[type[BaseModel], ...] = (
    schemas.Services,
    schemas.Slots,
    schemas.RequestPage,
    schemas.RequestDetail,
    schemas.WorkerPage,
    schemas.WorkerShown,
    schemas.Failure,
)
ERRORS = {
    "400": "a field is not valid (`fields` names each)",
    "401": "no token, or not a valid one",
    "403": "the token's role may not do this",
    "404": "no such record (or not one this token may see)",
    "409": "the record is not in a state that allows this",
    "413": "the body is larger than 64 KiB",
    "415": "the body is not JSON",
    "422": "the Idempotency-Key was used for another request (code idempotency_key_reused), or `slot` names "
    "no slot open for booking (code slot_not_open; the message lists the open ones)",
    "503": "the database or Redis cannot be reached this moment; retry after Retry-After seconds",
}
TEXT = {"type": "string", "minLength": 1, "maxLength": 100}
GEO_TEXT = {"type": "string", "maxLength": 100}  # GeoReport: an empty optional argument is one not given


def document(settings: Settings) -> dict[str, Any]:
    paths = {**_v1_paths(settings), **_open311_paths(), **_health_path()}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": f"{settings.helpline_name} API",
            "version": "1.0.0",
            "description": "File and follow the helpline's service requests from other systems (state portals, "
            "apps, city 311 systems), and manage workers. Every /api/v1 call takes a bearer token made with "
            "`sewamitra create-token --role partner|agent|supervisor|admin|provider`. Open311 GeoReport v2 is "
            "under /open311/v2: reading is open to all, filing takes the token as `api_key`.",
        },
        "servers": [{"url": settings.public_url}],
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}, "schemas": _schemas()},
        "paths": paths,
    }


def _schemas() -> dict[str, Any]:
    pairs = [(model, "validation") for model in INPUTS] + [(model, "serialization") for model in OUTPUTS]
    _, found = models_json_schema(pairs, ref_template=REF)  # type: ignore[arg-type]
    return dict(found.get("$defs", {})) | _open311_schemas()


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


def _json(name: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(name)}}}


def _errors(*codes: str) -> dict[str, Any]:
    return {code: _json("Failure", ERRORS[code]) for code in codes}


def _query(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema or TEXT}


def _listed(values: list[str], *, empty: bool = False) -> dict[str, Any]:
    """A comma-separated list of some of `values` (with `empty`, as GeoReport says of its optional
    arguments, an empty one is none given)."""
    choice = "|".join(values)
    listed = f"({choice})(,({choice}))*"
    return {"type": "string", "pattern": f"^({listed})?$" if empty else f"^{listed}$"}


def _paging() -> list[dict[str, Any]]:
    return [
        _query("page", "from 1", {"type": "integer", "minimum": 1, "maximum": 10000}),
        _query("per_page", "items a page", {"type": "integer", "minimum": 1, "maximum": 200}),
    ]


def _operation(
    summary: str,
    responses: dict[str, Any],
    *,
    parameters: list[dict[str, Any]] | None = None,
    body: str | None = None,
    secured: bool = True,
) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "responses": {**_errors("503"), **responses}}
    if secured:
        operation["security"] = [{"bearer": []}]
    if parameters:
        operation["parameters"] = parameters
    if body:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(body)}}}
    return operation


def _v1_paths(settings: Settings) -> dict[str, Any]:
    number = {
        "name": "number",
        "in": "path",
        "required": True,
        "description": "the request number (7 digits)",
        "schema": {"type": "string", "maxLength": 20},
    }
    worker_id = {
        "name": "worker_id",
        "in": "path",
        "required": True,
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
    }
    key = {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "description": "the same key files the same request once; with another request it is refused "
        "(422) (1–64 printable ASCII characters)",
        "schema": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[ -~]+$"},
    }
    request_filters = [
        _query("status", "comma-separated", _listed([s.value for s in RequestStatus])),
        _query("service", "comma-separated service codes", _listed(sorted(settings.service_codes))),
        _query("district", "as India Post spells it: Lucknow, Agra…"),
        _query("phone", "the citizen's number, in any usual form"),
        _query("created_from", "a date or a date-time with its zone"),
        _query("created_to", "a date (its end) or a date-time with its zone"),
        *_paging(),
    ]
    worker_filters = [
        _query("skill", "comma-separated service codes", _listed(sorted(settings.service_codes))),
        _query("police_verification", "comma-separated", _listed([v.value for v in VerificationStatus])),
        _query("available", "true or false", {"type": "string", "enum": ["true", "false"]}),
        _query("active", "true or false", {"type": "string", "enum": ["true", "false"]}),
        _query("district", "as India Post spells it"),
        _query("provider_id", "an agency's id", {"type": "integer", "minimum": 1, "maximum": MAX_ID}),
        *_paging(),
    ]
    return {
        "/api/v1/services": {
            "get": _operation(
                "The services a request may ask for", {"200": _json("Services", "the catalogue"), **_errors("401")}
            )
        },
        "/api/v1/slots": {
            "get": _operation(
                "The visit slots open for booking now, soonest first (a request's `slot` names one by its key)",
                {"200": _json("Slots", "the open slots"), **_errors("401")},
            )
        },
        "/api/v1/requests": {
            "get": _operation(
                "Requests, newest first (a partner: those it filed; an agency: its workers' jobs)",
                {"200": _json("RequestPage", "a page of requests"), **_errors("400", "401")},
                parameters=request_filters,
            ),
            "post": _operation(
                "File a request: stored, texted to the citizen and dispatched",
                {
                    "201": _json("RequestDetail", "filed"),
                    "200": _json("RequestDetail", "filed before with this Idempotency-Key"),
                    **_errors("400", "401", "403", "413", "415", "422"),
                },
                parameters=[key],
                body="RequestCreate",
            ),
        },
        "/api/v1/requests/{number}": {
            "get": _operation(
                "One request, with its offers and timeline",
                {"200": _json("RequestDetail", "the request"), **_errors("401", "404")},
                parameters=[number],
            )
        },
        "/api/v1/requests/{number}/cancel": {
            "post": _operation(
                "Cancel a request; a worker on the way is told not to go",
                {
                    "200": _json("RequestDetail", "cancelled"),
                    **_errors("400", "401", "403", "404", "409", "413", "415"),
                },
                parameters=[number],
                body="Cancellation",
            )
        },
        "/api/v1/requests/{number}/reschedule": {
            "post": _operation(
                "Move a request's visit to another open slot; a worker who has the job keeps it and is told",
                {
                    "200": _json("RequestDetail", "moved"),
                    **_errors("400", "401", "403", "404", "409", "413", "415"),
                },
                parameters=[number],
                body="Reschedule",
            )
        },
        "/api/v1/workers": {
            "get": _operation(
                "Workers (an agency: its own)",
                {"200": _json("WorkerPage", "a page of workers"), **_errors("400", "401", "403")},
                parameters=worker_filters,
            ),
            "post": _operation(
                "Onboard a worker; they wait for police verification",
                {"201": _json("WorkerShown", "added"), **_errors("400", "401", "403", "409", "413", "415")},
                body="WorkerCreate",
            ),
        },
        "/api/v1/workers/{worker_id}": {
            "get": _operation(
                "One worker",
                {"200": _json("WorkerShown", "the worker"), **_errors("401", "403", "404")},
                parameters=[worker_id],
            )
        },
        "/api/v1/workers/{worker_id}/availability": {
            "put": _operation(
                "Available for offers, or busy",
                {"200": _json("WorkerShown", "changed"), **_errors("400", "401", "403", "404", "413", "415")},
                parameters=[worker_id],
                body="Availability",
            )
        },
        "/api/v1/openapi.json": {
            "get": _operation(
                "This document",
                {
                    "200": {
                        "description": "OpenAPI 3.1",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
                secured=False,
            )
        },
    }


# -- Open311 GeoReport v2 ---------------------------------------------------------------------------


def _open311_schemas() -> dict[str, Any]:
    text = {"type": ["string", "null"]}
    when = {"type": "string", "format": "date-time"}
    return {
        "GeoService": {
            "type": "object",
            "required": ["service_code", "service_name", "type"],
            "properties": {
                "service_code": {"type": "string"},
                "service_name": {"type": "string"},
                "description": text,
                "metadata": {"type": "boolean"},
                "type": {"enum": ["realtime", "batch", "blackbox"]},
                "keywords": text,
                "group": text,
            },
        },
        "GeoServiceDefinition": {
            "type": "object",
            "required": ["service_code", "attributes"],
            "properties": {
                "service_code": {"type": "string"},
                "attributes": {"type": "array", "items": {"type": "object"}},
            },
        },
        "GeoRequest": {
            "type": "object",
            "required": ["service_request_id", "status", "service_code", "requested_datetime"],
            "properties": {
                "service_request_id": {"type": "string"},
                "status": {"enum": ["open", "closed"]},
                "status_notes": text,
                "service_name": text,
                "service_code": {"type": "string"},
                "description": text,
                "agency_responsible": text,
                "service_notice": text,
                "requested_datetime": when,
                "updated_datetime": when,
                "expected_datetime": {"type": ["string", "null"]},
                "address": text,
                "address_id": text,
                "zipcode": text,
                "lat": {"type": ["number", "null"]},
                "long": {"type": ["number", "null"]},
                "media_url": text,
            },
        },
        "GeoReceipt": {
            "type": "object",
            "required": ["service_request_id"],
            "properties": {"service_request_id": {"type": "string"}, "service_notice": text, "account_id": text},
        },
        "GeoError": {
            "type": "object",
            "required": ["code", "description"],
            "properties": {"code": {"type": "integer"}, "description": {"type": "string"}, "field": text},
        },
        "GeoDiscovery": {
            "type": "object",
            "required": ["endpoints"],
            "properties": {"endpoints": {"type": "array", "items": {"type": "object"}}},
        },
    }


def _geo(schema: dict[str, Any], description: str) -> dict[str, Any]:
    """A GeoReport answer: JSON by the schema, or the same as XML."""
    return {
        "description": description,
        "content": {"application/json": {"schema": schema}, "text/xml": {"schema": {"type": "string"}}},
    }


def _geo_errors(*codes: str) -> dict[str, Any]:
    """GeoReport's error lists for these statuses, and for an outage of the database or Redis (503)."""
    listed = {"type": "array", "items": _ref("GeoError")}
    return {
        code: _geo(listed, "GeoReport errors: code, description, and the field at fault") for code in (*codes, "503")
    }


def _open311_paths() -> dict[str, Any]:
    fmt = {"name": "format", "in": "path", "required": True, "schema": {"enum": ["json", "xml"]}}
    jurisdiction = _query("jurisdiction_id", "optional: this endpoint serves one jurisdiction", GEO_TEXT)
    many = lambda name: {"type": "array", "items": _ref(name)}  # noqa: E731
    form = {
        "type": "object",
        "required": ["api_key", "service_code"],
        "properties": {
            "api_key": {"type": "string", "maxLength": 64},
            "service_code": {"type": "string", "maxLength": 32},
            "jurisdiction_id": {"type": "string", "maxLength": 100},
            "lat": {"type": "string", "maxLength": 32},
            "long": {"type": "string", "maxLength": 32},
            "address_string": {"type": "string", "maxLength": 500},
            "attribute[pincode]": {"type": "string", "maxLength": 6},
            "attribute[language]": {"enum": ["hi", "en"]},
            "attribute[preferred_time]": {"type": "string", "maxLength": 80},
            "first_name": {"type": "string", "maxLength": 60},
            "last_name": {"type": "string", "maxLength": 60},
            "phone": {"type": "string", "maxLength": 20},
            "email": {"type": "string", "maxLength": 160},
            "description": {"type": "string", "maxLength": 4000},
        },
    }
    request_filters = [
        _query(
            "service_request_id",
            "comma-separated ids; overrides the other filters",
            {"type": "string", "maxLength": 900},
        ),
        _query("service_code", "comma-separated", GEO_TEXT),
        _query("status", "open, closed or both", _listed(["open", "closed"], empty=True)),
        _query("start_date", "W3C date-time with zone", GEO_TEXT),
        _query("end_date", "at most 90 days after start_date", GEO_TEXT),
        jurisdiction,
    ]
    return {
        "/open311/v2/discovery.{format}": {
            "get": _operation(
                "GeoReport service discovery",
                {"200": _geo(_ref("GeoDiscovery"), "where and what"), **_geo_errors("400", "404")},
                parameters=[fmt, jurisdiction],
                secured=False,
            )
        },
        "/open311/v2/services.{format}": {
            "get": _operation(
                "GeoReport: the service list",
                {"200": _geo(many("GeoService"), "the services"), **_geo_errors("400", "404")},
                parameters=[fmt, jurisdiction],
                secured=False,
            )
        },
        "/open311/v2/services/{service_code}.{format}": {
            "get": _operation(
                "GeoReport: a service's definition (its extra attributes)",
                {"200": _geo(_ref("GeoServiceDefinition"), "the attributes"), **_geo_errors("400", "404")},
                parameters=[
                    {"name": "service_code", "in": "path", "required": True, "schema": {"type": "string"}},
                    fmt,
                    jurisdiction,
                ],
                secured=False,
            )
        },
        "/open311/v2/requests.{format}": {
            "get": _operation(
                "GeoReport: requests (the last 90 days by default, at most 1,000)",
                {"200": _geo(many("GeoRequest"), "the requests"), **_geo_errors("400", "401", "404")},
                parameters=[fmt, *request_filters],
                secured=False,
            ),
            "post": {
                "summary": "GeoReport: file a request (api_key: a token that may file)",
                "parameters": [fmt],
                "requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": form}}},
                "responses": {
                    "200": _geo(many("GeoReceipt"), "filed"),
                    **_geo_errors("400", "401", "403", "404", "413", "422"),
                },
            },
        },
        "/open311/v2/requests/{service_request_id}.{format}": {
            "get": _operation(
                "GeoReport: one request",
                {"200": _geo(many("GeoRequest"), "the request"), **_geo_errors("400", "401", "404")},
                parameters=[
                    {"name": "service_request_id", "in": "path", "required": True, "schema": {"type": "string"}},
                    fmt,
                    jurisdiction,
                ],
                secured=False,
            )
        },
    }


def _health_path() -> dict[str, Any]:
    health = {
        "type": "object",
        "required": ["status", "database", "redis"],
        "properties": {
            "status": {"enum": ["ok", "degraded"]},
            "database": {"type": "string"},
            "redis": {"type": "string"},
            "rq_workers": {"type": "integer"},
            "schedulers": {"type": "integer"},
            "jobs_last_ran_s_ago": {"type": ["number", "null"]},
            "queues": {"type": "object", "additionalProperties": {"type": "integer"}},
            "failed_jobs": {"type": "integer"},
        },
    }
    answer = {"content": {"application/json": {"schema": health}}}
    return {
        "/healthz": {
            "get": _operation(
                "Is the helpline healthy: database, Redis, RQ workers, queue depth",
                {"200": {"description": "healthy", **answer}, "503": {"description": "degraded", **answer}},
                secured=False,
            )
        }
    }
