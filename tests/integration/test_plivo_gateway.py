"""The gateway on Plivo sends through the real `plivo` SDK to the local Plivo sandbox: SMS carry the
DLT header, entity and template ids; calls their answer and hangup URLs and ring timeout; and every
failure Plivo documents comes back as a GatewayError that says whether a retry can help."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.settings import Settings
from devtools.plivo_sandbox import PlivoSandbox
from devtools.simulator import SandboxMoves
from telephony import telephony
from telephony.plivo.rest import PlivoTelephony
from telephony.port import GatewayError
from tests.factories import make_settings

AUTH_ID = "MA" + "Z9Y8X7W6V5U4T3S2R1"
AUTH_TOKEN = "plivo-sandbox-token-0123456789"
CITIZEN = "+919876543210"
TEMPLATE = "1107160000000000001"
PUBLIC_URL = "https://helpline.example.gov.in"


@pytest.fixture
def sandbox() -> Iterator[PlivoSandbox]:
    with PlivoSandbox(AUTH_ID, AUTH_TOKEN) as running:
        yield running


def plivo_settings(tmp_path: Path, sandbox: PlivoSandbox, **environ: str) -> Settings:
    env = {
        "SEWAMITRA_TELEPHONY__PLATFORM": "plivo",
        "PLIVO_AUTH_ID": AUTH_ID,
        "PLIVO_AUTH_TOKEN": AUTH_TOKEN,
        "SEWAMITRA_PLIVO__API_BASE_URL": sandbox.base_url,
        **environ,
    }
    return make_settings(tmp_path, **env)


@pytest.fixture
def gateway(tmp_path: Path, sandbox: PlivoSandbox) -> PlivoTelephony:
    chosen = telephony(plivo_settings(tmp_path, sandbox))
    assert isinstance(chosen, PlivoTelephony)
    return chosen


def test_an_sms_goes_from_the_dlt_header_with_the_entity_and_template_ids(
    gateway: PlivoTelephony, sandbox: PlivoSandbox
) -> None:
    uuid = gateway.send_sms(
        CITIZEN, "सेवामित्र: अनुरोध 482913", status_callback=f"{PUBLIC_URL}/plivo/sms/status", dlt_template_id=TEMPLATE
    )
    [sms] = sandbox.messages
    assert sms["sid"] == uuid
    assert (sms["to"], sms["from"], sms["body"]) == (CITIZEN, "SEWAMT", "सेवामित्र: अनुरोध 482913")
    assert (sms["dlt_entity_id"], sms["dlt_template_id"]) == ("1101160000000000001", TEMPLATE)
    assert sms["status_callback"] == f"{PUBLIC_URL}/plivo/sms/status"
    assert sms["params"]["dst"] == "919876543210"  # Plivo's numbers: digits, country code first


def test_an_sms_without_a_dlt_template_is_not_sent(gateway: PlivoTelephony, sandbox: PlivoSandbox) -> None:
    with pytest.raises(GatewayError, match="DLT") as refused:
        gateway.send_sms(CITIZEN, "hello")
    assert not refused.value.retryable
    assert sandbox.messages == []


def test_a_call_has_its_answer_and_hangup_urls_and_ring_timeout(gateway: PlivoTelephony, sandbox: PlivoSandbox) -> None:
    uuid = gateway.place_call(
        CITIZEN, f"{PUBLIC_URL}/plivo/voice", status_callback=f"{PUBLIC_URL}/plivo/voice/status?offer=7", timeout=25
    )
    [placed] = sandbox.calls
    assert placed["sid"] == uuid
    assert (placed["from"], placed["to"], placed["timeout"]) == ("+918035350100", CITIZEN, 25)
    assert placed["url"] == f"{PUBLIC_URL}/plivo/voice"
    assert placed["status_callback"] == f"{PUBLIC_URL}/plivo/voice/status?offer=7"


def test_a_simulated_call_in_another_process_takes_the_transfer_of_its_own_call_once_over_http(
    gateway: PlivoTelephony, sandbox: PlivoSandbox
) -> None:
    mine, nobodys = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"
    gateway.redirect_call(mine, f"{PUBLIC_URL}/plivo/voice/queue/connect")
    gateway.redirect_call(nobodys, f"{PUBLIC_URL}/plivo/voice/menu")
    moves = SandboxMoves(sandbox.base_url)

    assert moves.waiting(mine)
    assert moves(mine) == f"{PUBLIC_URL}/plivo/voice/queue/connect"
    assert moves(mine) is None  # taken once
    assert sandbox.moved(nobodys) == f"{PUBLIC_URL}/plivo/voice/menu"  # left alone, followed by nobody


@pytest.mark.parametrize(("status", "retryable"), [(500, True), (503, True), (429, True), (400, False), (401, False)])
def test_plivos_documented_failures_say_whether_to_try_again(
    gateway: PlivoTelephony, sandbox: PlivoSandbox, status: int, retryable: bool
) -> None:
    sandbox.fail_next(1, status)
    with pytest.raises(GatewayError) as failed:
        gateway.send_sms(CITIZEN, "hello", dlt_template_id=TEMPLATE)
    assert (failed.value.status, failed.value.retryable) == (status, retryable)
    assert sandbox.messages == []


def test_wrong_credentials_are_permanent(tmp_path: Path, sandbox: PlivoSandbox) -> None:
    gateway = telephony(plivo_settings(tmp_path, sandbox, PLIVO_AUTH_TOKEN="not-the-token"))
    with pytest.raises(GatewayError) as failed:
        gateway.place_call(CITIZEN, f"{PUBLIC_URL}/plivo/voice")
    assert (failed.value.status, failed.value.retryable) == (401, False)


def test_a_stalled_plivo_is_a_retryable_timeout(tmp_path: Path, sandbox: PlivoSandbox) -> None:
    gateway = PlivoTelephony(plivo_settings(tmp_path, sandbox), timeout=0.2)
    sandbox.delay_next(1, 5)
    with pytest.raises(GatewayError, match="did not answer") as failed:
        gateway.send_sms(CITIZEN, "hello", dlt_template_id=TEMPLATE)
    assert failed.value.retryable


def test_an_unreachable_plivo_is_retryable(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        SEWAMITRA_TELEPHONY__PLATFORM="plivo",
        PLIVO_AUTH_ID=AUTH_ID,
        PLIVO_AUTH_TOKEN=AUTH_TOKEN,
        SEWAMITRA_PLIVO__API_BASE_URL="http://127.0.0.1:9",
    )
    with pytest.raises(GatewayError, match="unreachable") as failed:
        telephony(settings).send_sms(CITIZEN, "hello", dlt_template_id=TEMPLATE)
    assert failed.value.retryable


def test_without_credentials_nothing_is_sent_and_the_error_says_what_to_set(tmp_path: Path) -> None:
    gateway = telephony(make_settings(tmp_path, SEWAMITRA_TELEPHONY__PLATFORM="plivo"))
    with pytest.raises(GatewayError, match="PLIVO_AUTH_ID and PLIVO_AUTH_TOKEN") as failed:
        gateway.send_sms(CITIZEN, "hello", dlt_template_id=TEMPLATE)
    assert not failed.value.retryable
