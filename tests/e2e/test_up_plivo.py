"""Issue 17's check, end to end: `sewamitra up` with `telephony.platform: plivo` and no Plivo
account starts the local Plivo sandbox; `sewamitra simulate --platform plivo --keys 2,1,1,226001#,1`
books a request by Plivo's rules and signatures; the confirmation SMS reaches the sandbox from the
DLT header, with the DLT entity and template ids."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.factories import ROOT
from tests.up import get_json_list, running_up, wait_for

pytestmark = pytest.mark.slow
CITIZEN = "+919876543210"


@pytest.fixture
def plivo_helpline(request: pytest.FixtureRequest) -> Iterator[tuple[dict[str, str], list[str]]]:
    """`sewamitra up` on Plivo, one web and one RQ process, no demo data, in a data directory of its
    own; yields the environment to run other commands with, and what `up` printed."""
    one_each = {"SEWAMITRA_WORKERS__WEB": "1", "SEWAMITRA_WORKERS__RQ": "1"}
    with running_up(request, "--no-seed", SEWAMITRA_TELEPHONY__PLATFORM="plivo", **one_each) as up:
        yield up.env, up.output


def test_a_simulated_plivo_call_books_and_the_sms_reaches_the_plivo_sandbox_with_its_dlt_parameters(
    plivo_helpline: tuple[dict[str, str], list[str]],
) -> None:
    env, output = plivo_helpline
    banner = "".join(output)
    assert "/plivo/voice   (POST, signed by plivo)" in banner
    sandbox = re.search(r"local Plivo sandbox: (http://127\.0\.0\.1:\d+)/_sandbox", banner)
    assert sandbox, banner

    simulate = [sys.executable, "-m", "sewamitra", "--config", str(ROOT / "config.yaml"), "simulate"]
    call = subprocess.run(
        [*simulate, "--platform", "plivo", "--keys", "2,1,1,226001#,1,9"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert call.returncode == 0, call.stdout + call.stderr
    assert "Your request number is" in call.stdout
    assert "0 error(s)" in call.stdout

    # A first call: the request number and the privacy notice's link (two RQ workers: either first).
    def both_texts() -> dict[str, dict] | None:
        to_citizen = [m for m in get_json_list(f"{sandbox.group(1)}/_sandbox/messages") if m["to"] == CITIZEN]
        if len(to_citizen) < 2:
            return None
        return {
            "confirmation" if "Plumber" in m["body"] else "notice" if "/privacy" in m["body"] else m["body"]: m
            for m in to_citizen
        }

    sent = wait_for(both_texts, 60, "the request number and the privacy notice by SMS")
    assert set(sent) == {"confirmation", "notice"}, sent
    sms, notice = sent["confirmation"], sent["notice"]
    assert (sms["from"], sms["dlt_entity_id"], sms["dlt_template_id"]) == (
        "SEWAMT",
        "1101160000000000001",
        "1107160000000000030",  # config.yaml's request_created template
    )
    assert (notice["from"], notice["dlt_entity_id"], notice["dlt_template_id"]) == (
        "SEWAMT",
        "1101160000000000001",
        "1107160000000000017",  # config.yaml's privacy_notice template
    )
    assert re.search(r"/plivo/sms/status\?sms=\d+$", sms["status_callback"]), sms["status_callback"]
