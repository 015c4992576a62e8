"""The menu turns a web process remembers: at most so many, the oldest given up first."""

from __future__ import annotations

from ivr.menuturns import MenuTurns, Remembered

SEEN = (1, -1, -1)


def answer(turn: int) -> Remembered:
    return Remembered(turn, f"<Response>turn {turn}</Response>", b"body%d" % turn)


def test_a_turn_kept_is_found_by_its_session_keys_and_recordings_alone() -> None:
    turns = MenuTurns()
    turns.keep((b"menu", "1", SEEN), answer(1))
    assert turns.get((b"menu", "1", SEEN)) == answer(1)
    assert turns.get((b"menu", "2", SEEN)) is None  # other keys
    assert turns.get((b"menu", "1", (2, -1, -1))) is None  # a recording came or went since
    assert turns.get((b"other", "1", SEEN)) is None
    assert (turns.hits, turns.misses) == (1, 3)


def test_past_its_size_the_oldest_turn_is_given_up_first() -> None:
    turns = MenuTurns(size=3)
    for turn in range(5):
        turns.keep((b"menu%d" % turn, "", SEEN), answer(turn))
    turns.keep((b"menu4", "", SEEN), answer(4))  # kept again: nothing else is given up for it
    assert len(turns) == 3
    found = [turns.get((b"menu%d" % turn, "", SEEN)) for turn in range(5)]
    assert found == [None, None, answer(2), answer(3), answer(4)]
