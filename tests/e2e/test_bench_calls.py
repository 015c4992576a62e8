"""`sewamitra bench calls` in its short form, end to end on real gunicorn, PostgreSQL and Redis: no
errors, and every request number a caller heard is that call's request in the database. Timings
are printed, never asserted. Then the pure parts: percentiles, the callers' mix, verdicts."""

from __future__ import annotations

import functools
import io
import os
import random
import subprocess
import sys
import urllib.parse
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
import redis

from devtools import procfs
from devtools.bench import stats
from devtools.bench.calls import baseline, figures, load, report, run, scripts, servers, turns
from devtools.bench.calls.load import Log, Pacing, Sample
from devtools.simulator import APPLICATION_ERROR, Event, Failure, Heard, Request, Send, Transcript, TwilioError
from flows import prompts
from tests.factories import ROOT

# One worker of a split run (pytest-xdist) takes the whole module: its tests read one short run of the benchmark.
pytestmark = pytest.mark.xdist_group("bench_calls")


@pytest.fixture(scope="module")
def short_run(postgres_server_url: str, redis_server_url: str) -> run.Result:
    """One short run of the whole benchmark, shared by the tests that read it."""
    client = redis.Redis.from_url(redis_server_url)
    client.flushdb()  # the test suite's own Redis database
    client.close()
    return run.main(
        run.SHORT,
        postgres_url=postgres_server_url,
        redis_url=redis_server_url,
        out=io.StringIO(),
        config=ROOT / "config.yaml",
    )


@pytest.mark.slow
def test_the_short_run_has_no_errors_and_every_booking_is_in_the_database(
    short_run: run.Result, redis_server_url: str
) -> None:
    ours, base, ours_saturated, base_saturated, ours_again, base_again = short_run.phases

    assert short_run.errors == 0, short_run.report
    assert not short_run.failed, short_run.report
    for phase in (ours, ours_saturated, ours_again):
        assert phase.server.database_cpu_s  # its own PostgreSQL backends were found and measured
        assert phase.server.redis_cpu_s or not on_this_machine(redis_server_url)  # and Redis, by its INFO
        assert phase.bookings is not None
        assert phase.bookings.heard > 0
        assert phase.bookings.lost == 0
        assert phase.bookings.created == phase.bookings.heard  # no caller missed the number of a stored request
    for phase in (base, base_saturated, base_again):
        assert phase.bookings is None
        assert phase.server.redis_cpu_s is None  # the baseline uses no Redis


@pytest.mark.slow
def test_the_short_run_on_plivo_has_no_errors_and_every_booking_is_in_the_database(
    postgres_server_url: str, redis_server_url: str
) -> None:
    """`sewamitra bench calls --platform plivo`: the helpline on /plivo, callers by Plivo's rules and
    signatures, the baseline answering Plivo XML."""
    client = redis.Redis.from_url(redis_server_url)
    client.flushdb()
    client.close()
    plan = replace(run.SHORT, platform="plivo")
    result = run.main(
        plan,
        postgres_url=postgres_server_url,
        redis_url=redis_server_url,
        out=io.StringIO(),
        config=ROOT / "config.yaml",
    )
    assert result.errors == 0, result.report
    ours, _base, ours_saturated, _base_saturated, ours_again, _base_again = result.phases
    for phase in (ours, ours_saturated, ours_again):
        assert phase.bookings is not None
        assert phase.bookings.heard > 0
        assert phase.bookings.created == phase.bookings.heard


@pytest.mark.slow
def test_every_phase_measured_turns_and_the_report_prints_every_figure(short_run: run.Result) -> None:
    for phase in short_run.phases:
        assert phase.turns > 0, phase.name
        assert phase.latency_ms["p99"] > 0, phase.name
        assert phase.calls_completed > 0, phase.name
        assert len(phase.server.peak_rss_kb) == run.SHORT.workers
        assert all(phase.server.peak_rss_kb)
        assert phase.server.niceness == (phase.server.callers_niceness,) * (1 + run.SHORT.workers), phase.name
        assert phase.server.system_cpu_s is not None
        assert 0 <= phase.server.system_cpu_s <= phase.server.cpu_s, phase.name
    for label, _figure in report.ROWS:
        assert label in short_run.report
    assert "paced: same callers and pace" in short_run.report
    assert "saturated: closed loop, no think time, 30 callers for each, 2 rounds (each: " in short_run.report
    names = [phase.name for phase in short_run.phases]
    assert names == [
        "helpline, paced",
        "baseline, paced",
        "helpline, saturated",
        "baseline, saturated",
        "helpline, saturated again",
        "baseline, saturated again",
    ]
    assert "not judged at 30" in short_run.report  # the latency target is for 1,000 callers
    ours, _base, ours_saturated, _base_saturated, ours_again, _base_again = short_run.phases
    for phase in (ours, ours_saturated, ours_again):  # every turn of the hold counted under its webhook, once
        assert sum(count for count, _spread in phase.by_webhook.values()) == phase.turns
    assert "| the helpline's turns by webhook |" in short_run.report
    assert "| CPU per webhook request, saturated (both rounds) " in short_run.report
    for label, _key in report.BUDGET:
        assert f"| {label} " in short_run.report
    for webhook in ours.by_webhook:
        assert f"| {webhook} " in short_run.report


def test_a_request_counts_under_its_path_and_a_step_under_its_turn() -> None:
    assert load.webhook("/twilio/voice", "") == "/twilio/voice"
    assert load.webhook("/twilio/voice/step", "token=abc&turn=3") == "/twilio/voice/step (turn 3)"
    assert load.webhook("/plivo/voice/step", "turn=0") == "/plivo/voice/step (turn 0)"


@pytest.mark.slow
def test_the_run_leaves_its_redis_database_empty(short_run: run.Result, redis_server_url: str) -> None:
    client = redis.Redis.from_url(redis_server_url)
    assert client.dbsize() == 0
    client.close()


# -- the pure parts --------------------------------------------------------------------------------


def test_percentiles_are_measured_values_by_nearest_rank() -> None:
    ordered = [float(v) for v in range(1, 101)]

    assert [stats.percentile(ordered, p) for p in (50, 95, 99, 100)] == [50, 95, 99, 100]
    assert stats.percentile([7.0], 99) == 7.0
    assert stats.percentile([], 99) == 0.0


def log_of(samples: list[Sample]) -> Log:
    """A phase that started at 100 s: ramp 2 s, hold 4 s, ended at 110 s."""
    log = Log(Pacing(10, ramp_s=2, hold_s=4, think_s=1), started=100.0, samples=samples, ended=110.0)
    log.watched = [(101.0, 5, 0.001), (103.0, 10, 0.002), (105.0, 10, 0.003), (107.0, 3, 0.004)]
    return log


def test_a_phase_counts_the_turns_of_the_hold_and_its_errors_over_the_whole_phase() -> None:
    samples = [
        Sample(101.0, 0.500, True, 200, "/twilio/voice"),  # in the ramp: left out
        Sample(102.0, 0.010, True, 200, "/twilio/voice"),
        Sample(103.0, 0.020, True, 200, "/twilio/voice/step (turn 0)"),
        Sample(104.0, 0.030, False, 204, "/twilio/voice/status"),  # a status callback: not a turn
        Sample(105.0, 15.000, True, 0, "/twilio/voice/step (turn 0)"),  # no answer: its latency counts
        Sample(106.5, 0.040, True, 200, "/twilio/voice/step (turn 1)"),  # in the drain: left out
    ]
    verdict = scripts.Verdict("CA1", scripts.BOOK, "+919800000001", ("timeout",), None, (), 5, ("!! timeout",), 40)
    log = log_of(samples)
    log.verdicts = [verdict, scripts.Verdict("CA2", scripts.BOOK, "+919800000002", (), "1234567", (), 8, (), 90)]
    server = figures.Server(
        cpu_s=5.0,
        database_cpu_s=2.0,
        machine_busy_s=15.0,
        peak_rss_kb=(1024, 2048),
        peaks_reset=True,
        restarted_workers=0,
    )

    phase = figures.phase("helpline, paced", log, server, None)

    assert (phase.turns, phase.turns_per_s) == (2, 0.5)
    assert phase.latency_ms == {"p50": 20.0, "p95": 15000.0, "p99": 15000.0, "max": 15000.0}
    assert phase.by_webhook == {
        "/twilio/voice": (1, {"p50": 10.0, "p95": 10.0, "p99": 10.0, "max": 10.0}),
        "/twilio/voice/step (turn 0)": (2, {"p50": 20.0, "p95": 15000.0, "p99": 15000.0, "max": 15000.0}),
    }
    assert phase.errors == Counter({"timeout": 1})
    assert phase.error_count == 1
    assert (phase.calls, phase.calls_completed, phase.requests) == (2, 1, 6)
    assert phase.calls_in_progress == 10.0  # watched at 103 and 105
    assert phase.wall_s == 10.0
    assert phase.loop_lag_p99_ms == 4.0
    assert phase.first_errors == {"timeout": "!! timeout"}
    assert phase.listening_s_per_request == 10.0  # 130 s of calls over 13 requests
    assert round(phase.server_ms_per_request, 3) == round(5.0 / 6 * 1000, 3)


def test_a_request_s_cpu_is_split_by_process_and_the_rest_is_the_machine_s_beyond_them() -> None:
    """Two rounds of 6 requests each: CPU seconds summed over both, per request, in ms."""
    one = figures.phase("any", log_of([Sample(102.0, 0.010, True, 200, "/twilio/voice")] * 6), SERVER, None)
    first = replace(one, server=replace(SERVER, cpu_s=3.0, database_cpu_s=0.6, redis_cpu_s=0.3, machine_busy_s=6.0))
    second = replace(one, server=replace(SERVER, cpu_s=3.0, database_cpu_s=0.6, redis_cpu_s=0.3, machine_busy_s=9.0))
    first, second = replace(first, generator_cpu_cores=0.1), replace(second, generator_cpu_cores=0.2)  # 1 s, 2 s
    first = replace(first, server=replace(first.server, system_cpu_s=0.5))
    second = replace(second, server=replace(second.server, system_cpu_s=0.7))

    spent = figures.cpu_ms_per_request([first, second])

    assert spent == pytest.approx(
        {
            "server": 500.0,
            "server_system": 100.0,  # the kernel's part of the server's 500: not counted beside it
            "generator": 250.0,
            "postgres": 100.0,
            "redis": 50.0,
            "rest": 350.0,
            "machine": 1250.0,
        }
    )
    assert sum(spent[name] or 0 for name in ("server", "generator", "postgres", "redis", "rest")) == pytest.approx(
        spent["machine"]
    )
    baseline = figures.cpu_ms_per_request([replace(first, server=replace(SERVER, machine_busy_s=6.0))])
    assert (baseline["postgres"], baseline["redis"]) == (None, None)  # nothing to measure, not nothing spent
    assert baseline["rest"] == pytest.approx((6.0 - 1.0 - 1.0) / 6 * 1000)


def test_the_report_sets_each_request_s_cpu_against_the_baseline_s() -> None:
    ours = replace(SERVER, cpu_s=3.0, system_cpu_s=0.6, database_cpu_s=0.6, redis_cpu_s=0.3, machine_busy_s=6.0)
    theirs = replace(SERVER, cpu_s=1.5, system_cpu_s=0.4, machine_busy_s=3.0)
    one = figures.phase("any", log_of([Sample(102.0, 0.010, True, 200, "/twilio/voice")] * 6), SERVER, None)
    helpline, base = replace(one, server=ours), replace(one, server=theirs)

    lines = report.budget([one, one, helpline, base, helpline, base])  # the report's order of phases

    rows = {cells[0]: cells[1:] for cells in ([cell.strip() for cell in line.strip("|").split("|")] for line in lines)}
    assert rows["the server (gunicorn master and workers)"] == ["500.0 ms", "250.0 ms", "2.00x"]  # 6 s, 3 s over 12
    assert rows["of it, the kernel's for the server (system time: sockets, threads' waits)"] == [
        "100.0 ms",
        "66.7 ms",
        "1.50x",
    ]
    assert rows["PostgreSQL (backends of the bench's database)"] == ["100.0 ms", "n/a", ""]
    assert rows["Redis (the server)"] == ["50.0 ms", "n/a", ""]
    assert rows["the machine (every process)"] == ["1,000.0 ms", "500.0 ms", "2.00x"]
    assert rows["the rest (the kernel's work no process is charged for, other processes)"] == [
        "350.0 ms",
        "250.0 ms",
        "1.40x",
    ]


SERVER = figures.Server(1.0, None, 2.0, (1024,), True, 0)


def test_the_callers_mix_books_first_and_tracks_only_what_was_booked() -> None:
    worker = "+919811111111"
    mix = scripts.Mix(random.Random(1), ["1", "2"], ["226001"], [worker])
    drawn = [mix.next() for _ in range(200)]

    assert all(script.books for script in drawn)  # nobody has booked yet: nobody tracks
    assert len({script.from_number for script in drawn}) == 200
    assert worker not in {s.from_number for s in drawn}
    assert {script.keys[-5:] for script in drawn if script.kind == scripts.BOOK} <= {("226001#", "1", "9", "-", "2")}
    mix.booked(drawn[0].from_number)
    tracking = [script for script in (mix.next() for _ in range(200)) if not script.books]
    assert tracking
    assert {(s.from_number, s.keys) for s in tracking} == {(drawn[0].from_number, ("2",))}


def test_a_mix_given_places_asks_for_each_service_where_it_is_offered() -> None:
    places = [("1", "226001"), ("4", "208001")]
    mix = scripts.Mix(random.Random(1), ["1", "2", "3", "4"], ["226001", "208001"], places=places)
    booked = [script.keys[-6:-4] for script in (mix.next() for _ in range(200)) if script.kind == scripts.BOOK]

    assert set(booked) == {("1", "226001#"), ("4", "208001#")}


def test_think_time_is_drawn_around_its_mean_and_a_closed_loop_has_none() -> None:
    rng = random.Random(2)
    pauses = [Pacing(1, 0, 1, think_s=3.0).think(rng) for _ in range(1000)]

    assert min(pauses) >= 1.5
    assert max(pauses) <= 4.5
    assert Pacing(1, 0, 1, think_s=0).think(rng) == 0.0


def test_a_listening_caller_hears_out_what_twilio_played_then_thinks_before_keying() -> None:
    rng = random.Random(3)
    keyed = Send("https://x.invalid/twilio/voice/step", "POST", {}, acted=True, played_s=12.5)
    callback = Send("https://x.invalid/twilio/voice/status", "POST", {}, turn=False, played_s=2.0)
    listening, keying = Pacing(1, 0, 1, think_s=2.0, listen=True), Pacing(1, 0, 1, think_s=2.0)

    assert all(13.5 <= listening.pause(keyed, rng) <= 15.5 for _ in range(100))
    assert listening.pause(callback, rng) == 2.0  # the goodbye played out; nobody keys a status callback
    assert all(1.0 <= keying.pause(keyed, rng) <= 3.0 for _ in range(100))  # over the prompt
    assert keying.pause(callback, rng) == 0.0
    assert Pacing(1, 0, 1, think_s=0).pause(keyed, rng) == 0.0  # a closed loop


def said(language: str, prompt: str, number: str, **params: str) -> str:
    return prompts.text(prompt, language).format(number=prompts.digits(number, language), **params)


@pytest.mark.parametrize("language", ["en", "hi"])
def test_the_request_number_is_read_back_from_what_the_caller_heard(language: str) -> None:
    heard = [
        said(language, "request_created", "4821937"),
        said(language, "number_again", "4821937"),
        said(language, "request_status", "1000017", service="x", status="y"),
        said(language, "request_unknown", "9999991"),  # a number the caller typed, not one read back
    ]

    assert scripts.numbers_in(heard, scripts.BOOKED_PROMPT) == ["4821937"]
    assert scripts.numbers_in(heard, scripts.READ_BACK_PROMPT) == ["1000017"]


def transcript(*events: Event) -> Transcript:
    return Transcript("CA" + "1" * 32, events=list(events))


BOOKING = scripts.Script(scripts.BOOK, "+919800000001", ("2", "1", "1", "226001#", "1", "9", "-", "2"))


def test_a_booking_that_ends_without_a_number_is_an_error_only_against_the_helpline() -> None:
    call = transcript(Heard("Welcome"), Request("https://x/twilio/voice", {}, 200))

    assert scripts.judge(BOOKING, call, helpline=True).errors == ("no_request_number",)
    assert scripts.judge(BOOKING, call, helpline=False).errors == ()


def test_failures_and_apologies_are_errors_by_kind() -> None:
    call = transcript(
        Failure(TwilioError.HTTP_CONNECTION_FAILURE, "no answer: timeout"),
        Failure(TwilioError.HTTP_RETRIEVAL_FAILURE, "HTTP 500"),
        Failure(TwilioError.DOCUMENT_PARSE_FAILURE, "not XML"),
        Heard(prompts.text("technical_problem", "hi")),
        Heard(APPLICATION_ERROR),
        Heard(said("en", "request_created", "4821937")),
    )

    verdict = scripts.judge(BOOKING, call, helpline=True)

    assert Counter(verdict.errors) == Counter({"timeout": 1, "http": 1, "twiml": 1, "apology": 2})
    assert verdict.booked == "4821937"


def test_the_baseline_answers_its_menu_to_any_request() -> None:
    client = baseline.create_app().test_client()

    for answer in (client.post("/twilio/voice/step?turn=3", data={"Digits": "1"}), client.get("/healthz")):
        assert answer.status_code == 200
        assert answer.mimetype == "text/xml"
        assert b"<Gather" in answer.data
        assert b"<Redirect" in answer.data


def test_proc_reads_this_process() -> None:
    pid = os.getpid()
    assert pid in procfs.matching("pytest") or pid in procfs.matching("python")

    assert procfs.cpu_seconds(pid) > 0
    assert procfs.peak_rss_kb(pid) > 0
    assert procfs.niceness(pid) == os.getpriority(os.PRIO_PROCESS, 0)
    assert os.getpid() in procfs.children(os.getppid())
    assert procfs.machine_busy_s() > 0


def test_a_server_started_nicer_than_the_bench_and_its_workers_inherit_it() -> None:
    """`--server-niceness`: the server's process and what it starts."""
    child = (
        "import os, subprocess, sys; print(os.nice(0), flush=True); "
        "subprocess.run([sys.executable, '-c', 'import os; print(os.nice(0))'])"
    )
    ours = os.nice(0)
    for niceness in (0, 3):
        out = subprocess.run(
            [sys.executable, "-c", child],
            preexec_fn=functools.partial(servers.started, niceness),
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        assert out == [str(min(ours + niceness, 19))] * 2


def test_the_exceptions_a_server_logged_are_counted_by_their_last_line(tmp_path: Path) -> None:
    log = tmp_path / "helpline.log"
    log.write_text(
        "2026-12-02 INFO booted\n"
        'ERROR ivr.voice: voice webhook failed\nTraceback (most recent call last):\n  File "x.py", line 1\n'
        "    boom()\nTimeoutError: call sewamitra:call:CA1 is busy\n"
        'Traceback (most recent call last):\n  File "x.py", line 1\nTimeoutError: call sewamitra:call:CA1 is busy\n'
        "[2026-12-02 04:39:32 +0000] [77] [CRITICAL] WORKER TIMEOUT (pid:78)\n"
    )

    assert servers.logged_errors(log) == Counter(
        {"TimeoutError: call sewamitra:call:CA1 is busy": 2, "WORKER TIMEOUT (pid:78)": 1}
    )


@pytest.mark.slow
@pytest.mark.parametrize("platform", ["twilio", "plivo"])
def test_bench_turns_counts_every_request_of_its_calls_by_webhook(
    postgres_server_url: str, redis_server_url: str, platform: str
) -> None:
    client = redis.Redis.from_url(redis_server_url)
    client.flushdb()
    client.close()
    config = ROOT / "config.yaml"
    result = turns.main(
        6,
        postgres_url=postgres_server_url,
        redis_url=redis_server_url,
        out=io.StringIO(),
        config=config,
        platform=platform,
        replays=2,
    )

    assert result.errors == 0, result.report
    voice = f"/{platform}/voice"
    # The menu turns that committed nothing, sent again and answered as the first time (else it raises)
    assert f"{voice}/step (turn 1)" in {replayed.webhook for replayed in result.replayed}, result.report
    assert all(r.helpline > 0 and r.baseline > 0 and 0 < r.requests <= turns.REPLAYED for r in result.replayed)
    assert "| webhook, replayed " in result.report
    assert {voice, f"{voice}/status", f"{voice}/step (turn 0)"} <= set(result.helpline.spent)
    assert len(result.helpline.spent[voice]) == 6  # each measured call once; the warm-up not counted
    assert result.helpline.requests == result.baseline.requests  # the baseline took the same calls
    assert all(seconds > 0 for times in result.helpline.spent.values() for seconds in times)
    for webhook in result.helpline.spent:
        assert f"| {webhook} " in result.report
    assert "| baseline (one fixed menu) |" in result.report
    # The first menus are every new caller's: after the first call, answered from memory
    memory = result.remembered
    assert 0 < memory.hits < memory.asked, result.report
    assert 0 < memory.kept <= memory.misses
    assert "answered from memory (`ivr.menuturns`), of the steps whose URL carried a session, " in result.report


def test_the_saturated_ratio_is_taken_over_both_rounds_and_each_is_printed() -> None:
    """Helpline, baseline, baseline, helpline: a machine that slowed down from the first round to the
    second weighs on both servers alike."""
    server = figures.Server(1.0, None, 2.0, (1024,), True, 0)
    one = figures.phase("any", log_of([Sample(102.0, 0.010, True, 200, "/twilio/voice")]), server, None)
    paced = [replace(one, turns_per_s=300.0), replace(one, turns_per_s=310.0)]
    saturated = [replace(one, turns_per_s=turns) for turns in (600.0, 1_000.0, 300.0, 900.0)]

    lines = "\n".join(report.ratios([*paced, *saturated]))

    assert "300.0 / 310.0 = 96.8%" in lines
    assert "10 callers for each, 2 rounds (each: 60.0%; 33.3%)" in lines
    assert "900.0 / 1,900.0 = 47.4% | MISSED" in lines


def test_redis_s_cpu_is_read_only_where_it_is_this_machine_s(redis_server_url: str) -> None:
    if not on_this_machine(redis_server_url):
        pytest.skip("the suite's Redis runs on another machine")
    here = redis.Redis.from_url(redis_server_url)
    elsewhere = redis.Redis(host="redis.bench.invalid", port=6379)  # never connected: nothing is asked of it
    try:
        assert (run.redis_cpu_s(here) or 0.0) > 0
        assert run.redis_cpu_s(elsewhere) is None
    finally:
        here.close()


def on_this_machine(url: str) -> bool:
    parsed = urllib.parse.urlsplit(url)
    return parsed.scheme == "unix" or parsed.hostname in run.LOCAL_HOSTS


def test_proc_tells_the_part_of_a_process_s_cpu_time_the_kernel_spent_for_it() -> None:
    pid = os.getpid()
    _whole, before = procfs.cpu_times(pid)

    for _ in range(1_000_000):  # system calls (each read of /proc is some) until the kernel's clock ticks
        os.stat("/")
        if procfs.cpu_times(pid)[1] > before:
            break

    whole, system = procfs.cpu_times(pid)
    assert before < system <= whole
