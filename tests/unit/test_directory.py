"""PIN codes and phone numbers are checked against real directories, offline."""

from __future__ import annotations

from core import phones, pincodes
from core.geo import distance_km


def test_a_lucknow_pin_code_names_its_district_and_centre() -> None:
    place = pincodes.lookup("226001")
    assert place is not None
    assert (place.district, place.state) == ("LUCKNOW", "UTTAR PRADESH")
    assert place.latitude is not None
    assert 26.5 < place.latitude < 27.2
    assert place.longitude is not None
    assert 80.5 < place.longitude < 81.3


def test_unknown_or_malformed_pin_codes_are_none() -> None:
    for pin in ["999999", "012345", "2260", "22600a", ""]:
        assert pincodes.lookup(pin) is None


def test_a_pin_code_india_post_knows_no_district_of_is_none_not_a_crash() -> None:
    """Found by fuzzing the API: 18 codes (Bilaspur's 495002 among them) have a state only."""
    for pin in ["495002", "121999", "462034", "590100"]:
        assert pincodes.lookup(pin) is None


def test_a_pin_code_outside_uttar_pradesh_is_known_but_not_in_the_state() -> None:
    place = pincodes.lookup("110001")
    assert place is not None
    assert not place.in_state("Uttar Pradesh")


def test_uttar_pradesh_has_75_districts() -> None:
    districts = pincodes.districts("UTTAR PRADESH")
    assert len(districts) == 75
    assert {"LUCKNOW", "VARANASI", "GAUTAM BUDDHA NAGAR", "PRAYAGRAJ"} <= set(districts)
    assert pincodes.display_name("GAUTAM BUDDHA NAGAR") == "Gautam Buddha Nagar"


def test_indian_mobiles_are_normalised_and_landlines_refused() -> None:
    assert phones.indian_mobile("98765 43210") == "+919876543210"
    assert phones.indian_mobile("+91-98765-43210") == "+919876543210"
    assert phones.indian_mobile("09876543210") == "+919876543210"
    assert phones.indian_mobile("0522 262 3456") is None  # a Lucknow landline cannot get SMS
    assert phones.indian_mobile("+14155550100") is None
    assert phones.indian_mobile("12345") is None
    assert phones.indian_mobile("=HYPERLINK(1)") is None


def test_withheld_numbers_are_recognised_and_masked() -> None:
    assert phones.is_withheld("anonymous")
    assert phones.is_withheld("")
    assert phones.is_withheld(None)
    assert not phones.is_withheld("+919876543210")
    assert phones.mask("+919876543210") == "+91 98xxxxx210"
    assert phones.mask(None) == "withheld"


def test_misplaced_post_offices_do_not_misplace_a_pin_code() -> None:
    # India Post puts Noida's sector offices in Madhya Pradesh and most of Pratapgarh in
    # Chhattisgarh; the PIN code must still land in its own town.
    noida = pincodes.lookup("201301")
    pratapgarh = pincodes.lookup("230001")
    assert noida is not None
    assert pratapgarh is not None
    assert distance_km(noida.latitude, noida.longitude, 28.57, 77.32) < 15  # type: ignore[arg-type]
    assert distance_km(pratapgarh.latitude, pratapgarh.longitude, 25.90, 81.94) < 15  # type: ignore[arg-type]


def test_every_uttar_pradesh_pin_code_lies_inside_the_state() -> None:
    for pin in pincodes.pincodes("UTTAR PRADESH"):
        place = pincodes.lookup(pin)
        assert place is not None
        assert place.latitude is not None
        assert place.longitude is not None
        assert 23.8 <= place.latitude <= 30.5, place
        assert 77.0 <= place.longitude <= 84.7, place
