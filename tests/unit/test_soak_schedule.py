"""The soak's fault schedule: every kind of fault, spread over the load, none in its last fifth (so
that each is recovered from before the drain)."""

from __future__ import annotations

import itertools

from devtools.soak import faults


def test_every_kind_of_fault_is_on_the_schedule_and_the_database_is_cut_twice() -> None:
    assert set(faults.SCHEDULE) == {
        faults.RQ_WORKER,
        faults.WEB_WORKER,
        faults.SCHEDULER,
        faults.REDIS_AOF,
        faults.REDIS_EMPTY,
        faults.DATABASE,
        faults.SMS_API,
    }
    assert faults.SCHEDULE.count(faults.DATABASE) == 2


def test_faults_go_in_evenly_after_the_first_tenth_of_the_load_and_before_its_last_fifth() -> None:
    times = faults.times(600.0)

    assert len(times) == len(faults.SCHEDULE)
    assert times[0] == 60.0
    assert times[-1] == 480.0
    gaps = {round(later - earlier, 6) for earlier, later in itertools.pairwise(times)}
    assert gaps == {60.0}
