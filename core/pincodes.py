"""PIN codes: district, state and coordinates from India Post's directory, offline.

`data/pincodes.csv.gz` holds every PIN code India Post places (its primary state and district, and
its position where its own post offices give one) and `data/district_centres.csv` every district
with its middle, which stands in for an approximate place's position. `sewamitra pincodes build`
works both out from the PyPI packages of the directory (devtools/pincode_data.py says how). Those
packages, and the medians worked out at start, took some 20 MB of a web worker's peak
(`sewamitra bench calls --short`: 129 -> 108 MB); the two files take about 1 MB.
"""

from __future__ import annotations

import csv
import gzip
import re
import sys
from array import array
from bisect import bisect_left
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from core.geo import distance_km

_SIX_DIGITS = re.compile(r"^[1-9]\d{5}$")
_PIN_IN_TEXT = re.compile(r"(?<![0-9])([1-9][0-9]{2} ?[0-9]{3})(?![0-9])")
# A post office this far from the middle of its district is taken to be misplaced.
NEAR_DISTRICT_KM = 60.0
# A point farther than this from every PIN code of the state is taken to be outside it.
NEAREST_KM = 20.0
DATA = Path(__file__).parent / "data"
# One line a PIN code, in PIN code order: pincode,state,district,latitude,longitude (no position: approximate).
PLACES = DATA / "pincodes.csv.gz"
# One line a district of each state: state,district,latitude,longitude (its middle, where India Post gives one).
DISTRICT_CENTRES = DATA / "district_centres.csv"
# The Hindi names of the districts, keyed by the directory's own spelling (`KUSHI NAGAR`, `KHERI`).
DISTRICT_NAMES = DATA / "districts.csv"
Point = tuple[float, float]


@dataclass(frozen=True, slots=True)  # a web process keeps one for each PIN code of its service area
class Place:
    pincode: str
    district: str
    state: str
    latitude: float | None
    longitude: float | None
    approximate: bool = False

    def in_state(self, state: str) -> bool:
        return self.state == state.upper()


def is_well_formed(pincode: str) -> bool:
    return bool(_SIX_DIGITS.match(pincode))


@cache
def lookup(pincode: str) -> Place | None:
    """The place a PIN code names, or None when India Post does not know it."""
    pincode = pincode.strip()
    line = _line(pincode) if is_well_formed(pincode) else None
    if line is None:
        return None  # unknown, or one of the few codes India Post knows only a state of
    _, state, district, latitude, longitude = line.split(",")
    state, district = sys.intern(state), sys.intern(district)  # one string each, not one a PIN code
    position = (float(latitude), float(longitude)) if latitude else _district_centres(state).get(district)
    return Place(
        pincode=pincode,
        district=district,
        state=state,
        latitude=position[0] if position else None,
        longitude=position[1] if position else None,
        approximate=not latitude,
    )


def districts(state: str) -> list[str]:
    return sorted(district for row_state, district, *_ in _district_rows() if row_state == state.upper())


def pincodes(state: str) -> list[str]:
    """Every PIN code whose primary state is `state`."""
    return list(_pincodes(state.upper()))


@cache
def _pincodes(state: str) -> tuple[str, ...]:
    """Worked out once per process, each placed (and kept by `lookup`): each web app places its
    service area at start."""
    text, _ = _directory()
    places = [lookup(pin) for pin in re.findall(rf"^([0-9]{{6}}),{re.escape(state)},", text, flags=re.MULTILINE)]
    return tuple(place.pincode for place in places if place)


def nearest(latitude: float, longitude: float, state: str, within_km: float = NEAREST_KM) -> Place | None:
    """The PIN code of `state` placed nearest a point (a phone's GPS fix), if one is within `within_km`."""
    best = min(_placed(state.upper()), key=lambda place: _km((latitude, longitude), _point(place)), default=None)
    if best is None or _km((latitude, longitude), _point(best)) > within_km:
        return None
    return best


@cache
def _placed(state: str) -> tuple[Place, ...]:
    """The state's PIN codes that have a position of their own (not a district's middle)."""
    places = (lookup(pin) for pin in pincodes(state))
    return tuple(p for p in places if p is not None and p.latitude is not None and not p.approximate)


def _point(place: Place) -> Point:
    return (place.latitude or 0.0, place.longitude or 0.0)


def in_text(text: str) -> str | None:
    """The last 6-digit PIN code written in an address ('… Hazratganj, Lucknow 226001'), if any."""
    found = _PIN_IN_TEXT.findall(text)
    return found[-1].replace(" ", "") if found else None


def display_name(district: str, language: str = "en") -> str:
    """'GAUTAM BUDDHA NAGAR' -> 'Gautam Buddha Nagar', or 'गौतम बुद्ध नगर' for a Hindi reader or caller."""
    if language == "hi":
        return hindi_names().get(district.upper(), district.title())
    return district.title()


@cache
def hindi_names() -> dict[str, str]:
    """The directory's district name -> its name in Devanagari."""
    with DISTRICT_NAMES.open(encoding="utf-8", newline="") as rows:
        return {row["district"]: row["hindi"] for row in csv.DictReader(rows)}


@cache
def _district_centres(state: str) -> dict[str, Point]:
    """The middle of each district of `state` that India Post places."""
    return {
        district: (float(latitude), float(longitude))
        for row_state, district, latitude, longitude in _district_rows()
        if row_state == state and latitude
    }


@cache
def _district_rows() -> tuple[tuple[str, ...], ...]:
    with DISTRICT_CENTRES.open(encoding="utf-8", newline="") as rows:
        next(rows)  # the header
        return tuple(tuple(row) for row in csv.reader(rows))


@cache
def _directory() -> tuple[str, array[int]]:
    """The places' text, and where each of its lines starts (about 1 MB in all)."""
    with gzip.open(PLACES, "rt", encoding="ascii", newline="") as places:
        text = places.read()
    starts = array("I", (found.end() for found in re.finditer("\n", text)))
    starts.pop()  # the end of the text, after its last line
    return text, starts


def _line(pincode: str) -> str | None:
    """The place's line, found by bisecting the lines (they are in PIN code order)."""
    text, starts = _directory()
    at = bisect_left(starts, pincode, key=lambda start: text[start : start + 6])
    if at == len(starts) or text[starts[at] : starts[at] + 6] != pincode:
        return None
    return text[starts[at] : text.index("\n", starts[at])]


def _km(a: Point, b: Point) -> float:
    return distance_km(a[0], a[1], b[0], b[1])
