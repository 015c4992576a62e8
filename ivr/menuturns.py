"""Menu turns answered from memory.

A menu turn that commits nothing, reads no one's records and performs only effects whose outcome is
fixed by what they are given (`Performed.static`: a PIN code's district) is a function of the session
its step URL carries and the keys the caller pressed: every call that carries the same session and
keys the same is answered the same, but for the call's own token in the next step's URL. So such a
turn is remembered by its token's body (`turntoken.body_of`, the session before the call's MAC) and
its keys, with the recordings on disk as the answer was rendered for: the answer with a mark where
the token goes, and the body of the next session. A call that asks it again gets that answer with
its own token signed in, without the session being read, the flow run or the next session written:
the first menus every caller goes through, the same for all of them, are then a MAC checked, a
lookup and a MAC made.

The platform's signature and the token's MAC are still checked on every turn (`voice._carried_step`),
and a token carried to another turn is refused as before.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

# Turns kept, some 1.6 kB each (their answer, mostly). The first menus every caller hears are a few
# dozen entries; most others are a PIN code keyed after what was chosen before it, seldom asked again.
# In `sewamitra bench turns --calls 1500` (1,280 distinct turns), 1,024 answered 28.6% of the carried
# steps in 1.6 MB; 256, 27.3% in 0.4 MB; 64, 23.6%; keeping all of them, 28.9%.
MAX_KEPT = 1024

Key = tuple[bytes, str, tuple[int, ...]]  # the carried session's body, the keys pressed, the recordings seen


@dataclass(frozen=True)
class Remembered:
    """A menu turn's answer, for any call: the turn its carried session waited at, the document with
    `voice.TOKEN_MARK` where the call's token goes, and the body of the token to sign for the call."""

    turn: int
    document: str
    body: bytes


class MenuTurns:
    """The last `size` menu turns remembered, the oldest given up first. A read takes no lock (a dict's
    `get` is one step for the interpreter); a write does, so two threads never evict the same entry.
    `hits` and `misses` are counted without one, for `sewamitra bench turns` (one thread): under a web
    process's threads a count may fall short."""

    def __init__(self, size: int = MAX_KEPT) -> None:
        self._size = size
        self._kept: dict[Key, Remembered] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Key) -> Remembered | None:
        found = self._kept.get(key)
        if found is None:
            self.misses += 1
        else:
            self.hits += 1
        return found

    def keep(self, key: Key, remembered: Remembered) -> None:
        with self._lock:
            if key not in self._kept and len(self._kept) >= self._size:
                del self._kept[next(iter(self._kept))]
            self._kept[key] = remembered

    def __len__(self) -> int:
        return len(self._kept)
