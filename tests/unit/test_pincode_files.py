"""The PIN code files the helpline ships are what `sewamitra pincodes build` makes of the installed
India Post packages: upgrading those without building again fails here, not in a caller's district."""

from __future__ import annotations

import gzip

from core import pincodes
from devtools import pincode_data


def test_the_shipped_pin_code_files_are_built_from_the_installed_directory() -> None:
    built = pincode_data.build()

    assert gzip.decompress(pincodes.PLACES.read_bytes()).decode("ascii") == built.places
    assert pincodes.DISTRICT_CENTRES.read_text(encoding="utf-8") == built.districts
