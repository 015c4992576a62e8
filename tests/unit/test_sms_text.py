"""An SMS is billed by the segment: we count them as carriers do, and fill templates so that a
long address or a hostile value never costs a third segment or rewrites the message."""

from __future__ import annotations

import random
import unicodedata

import pytest

from core.settings import load_settings
from dispatch import sms_text
from dispatch.sms_text import SmsTooLong, check_templates, encoding, length, render, segments
from tests.factories import ROOT

HI = "न"  # one Devanagari letter: forces UCS-2, one UTF-16 unit
EMOJI = "😀"  # outside the BMP: a surrogate pair, two UTF-16 units
OFFER_EN = "Sewamitra job {number}: {service} at {locality}. Reply 1 to accept, 2 to decline, or call 155330."
# A text that carries an address (no shipped one does since issue 18: the worker hears it from the helpline).
WORKER_EN = "Sewamitra job {number} is yours. Help {helpline}. Go to {address}. Text DONE {number} CODE when done."
WORKER_HI = "सेवामित्र काम {number} आपका है। सहायता {helpline}, पता: {address}। पूरा होने पर DONE {number} कोड भेजें।"
LONG_ADDRESS = "Flat 4B, Sunrise Apartments, Sector 12, Indira Nagar, Near Bhootnath Market, Lucknow 226016"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "GSM-7"),
        ("Sewamitra job 1234567: Plumber", "GSM-7"),
        ("@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ¤¡ÄÖÑÜ§¿äöñüà\r\n", "GSM-7"),
        ("{}[]~^\\|€", "GSM-7"),
        ("सेवामित्र", "UCS-2"),
        ("Wait…", "UCS-2"),  # the ellipsis character is not in the GSM alphabet
        ("Ram’s job", "UCS-2"),  # nor is a typographic apostrophe
        ("back`tick", "UCS-2"),
        ("ç", "UCS-2"),  # only capital Ç is GSM
        (EMOJI, "UCS-2"),
    ],
)
def test_encoding_is_gsm7_only_when_every_character_is(text: str, expected: str) -> None:
    assert encoding(text) == expected


@pytest.mark.parametrize(
    ("text", "units", "parts"),
    [
        ("", 0, 1),
        ("a" * 160, 160, 1),
        ("a" * 161, 161, 2),
        ("a" * 306, 306, 2),
        ("a" * 307, 307, 3),
        (HI * 70, 70, 1),
        (HI * 71, 71, 2),
        (HI * 134, 134, 2),
        (HI * 135, 135, 3),
        ("a" * 69 + HI, 70, 1),  # one Hindi letter makes the whole text UCS-2
        ("a" * 70 + HI, 71, 2),
    ],
)
def test_segments_at_the_exact_boundaries(text: str, units: int, parts: int) -> None:
    assert (length(text), segments(text)) == (units, parts)


@pytest.mark.parametrize("char", list("{}[]~^\\|€"))
def test_each_gsm_extension_character_counts_two(char: str) -> None:
    assert length(char) == 2
    assert segments("a" * 158 + char) == 1
    assert segments("a" * 159 + char) == 2


@pytest.mark.parametrize(
    ("text", "units", "parts"),
    [
        (EMOJI, 2, 1),
        (EMOJI * 35, 70, 1),
        (EMOJI * 35 + "a", 71, 2),
        (HI * 66 + EMOJI + HI * 66, 134, 3),  # the pair cannot straddle parts, so 66 + 68 spills
        (HI * 65 + EMOJI + HI * 67, 134, 2),
        ("a" * 152 + "€" + "a" * 152, 306, 3),  # nor can an escape pair
        ("a" * 151 + "€" + "a" * 153, 306, 2),
    ],
)
def test_pairs_count_two_and_are_never_split(text: str, units: int, parts: int) -> None:
    assert (length(text), segments(text)) == (units, parts)


@pytest.mark.parametrize(
    ("value", "cleaned"),
    [
        ("  Gomti   Nagar ", "Gomti Nagar"),
        ("Line one\nLine two\r\n\tthree", "Line one Line two three"),
        ("nul\x00bell\x07esc\x1b", "nulbellesc"),
        ("zero\u200bwidth\ufeff and \u202eright-to-left", "zerowidth and right-to-left"),
        ("क्\u200dष", "क्\u200dष"),  # a joiner that shapes a Devanagari conjunct is kept
        ("line\u2028separator", "line separator"),
        (1234567, "1234567"),
    ],
)
def test_a_value_is_one_line_of_plain_text(value: object, cleaned: str) -> None:
    assert sms_text.clean(value) == cleaned


@pytest.mark.parametrize(
    ("template", "values", "expected"),
    [
        ("Job {number}: {service}", {"number": "1234567", "service": "Plumber"}, "Job 1234567: Plumber"),
        ("{number} {number}", {"number": "1234567"}, "1234567 1234567"),
        ("Job {number}", {"number": "1234567", "unused": "x"}, "Job 1234567"),
        ("Code {{code}} is {code}", {"code": "4821"}, "Code {code} is 4821"),
        ("Job {number}", {"number": "  12\n34567 "}, "Job 12 34567"),
        ("{a} {b}", {"a": "{b}", "b": "{a}"}, "{b} {a}"),
        ("Hi {worker}", {"worker": "{code}"}, "Hi {code}"),
        ("Hi {worker}", {"worker": "{0} {worker.__class__} {{code}} %s"}, "Hi {0} {worker.__class__} {{code}} %s"),
    ],
)
def test_render_fills_placeholders_and_values_stay_literal(template: str, values: dict, expected: str) -> None:
    assert render(template, values) == expected


def test_a_missing_value_is_a_programming_error() -> None:
    with pytest.raises(KeyError, match="code"):
        render("Give code {code}", {})


def test_a_long_address_is_cut_at_a_word_to_fit_two_segments() -> None:
    values = {**sms_text.TYPICAL_VALUES, "address": " ".join([LONG_ADDRESS] * 3)}
    text = render(WORKER_EN, values)
    assert segments(text) == 2
    assert encoding(text) == "GSM-7"
    assert "Flat 4B, Sunrise Apartments, Sector 12" in text
    assert "... Text DONE 1234567 CODE when done." in text  # "...": "…" would force UCS-2
    cut = text.split("Go to ")[1].split("...")[0]
    assert values["address"].startswith(cut)
    assert not values["address"][len(cut)].isalnum()


def test_a_hindi_sms_shortens_the_address_with_an_ellipsis() -> None:
    text = render(WORKER_HI, sms_text.TYPICAL_VALUES)
    assert length(text) <= 134
    assert "पता: House 12A, Lane 4, Vikas Nagar, Near Hanuman…। पूरा होने पर DONE 1234567 कोड भेजें।" in text


def test_a_devanagari_address_is_not_cut_inside_a_letter() -> None:
    address = "विश्वविद्यालयमार्गकेपासवालीगली" * 10  # one long hostile word
    text = render(WORKER_HI, {**sms_text.TYPICAL_VALUES, "address": address})
    cut = text.split("पता: ")[1].split("…")[0]
    assert segments(text) <= 2
    assert address.startswith(cut)
    assert cut[-1] != "्"
    assert address[len(cut)] not in "ािीुूेैोौंँ्"


def test_values_are_shortened_in_order_address_before_locality() -> None:
    template = "{locality} / {address} / " + "x" * 250
    values = {"locality": "Gomti Nagar, Lucknow", "address": LONG_ADDRESS}
    text = render(template, values)
    assert text.startswith("Gomti Nagar, Lucknow / Flat 4B")
    assert segments(text) == 2


def test_a_second_value_is_shortened_when_the_first_is_not_enough() -> None:
    template = "{address} / {locality} / " + "x" * 250
    text = render(template, {"locality": "Gomti Nagar, Lucknow " * 5, "address": LONG_ADDRESS})
    assert text.startswith("... / Gomti Nagar")
    assert segments(text) == 2


def test_values_not_named_shrinkable_are_never_cut() -> None:
    with pytest.raises(SmsTooLong, match="is 295 GSM-7 characters without its values and 316 with them"):
        render("Job {number} " + "x" * 290, {"number": "1234567" * 3})
    with pytest.raises(SmsTooLong):
        render("At {address} " + "x" * 290, {"address": LONG_ADDRESS}, shrinkable=())


def test_max_segments_of_one() -> None:
    text = render(
        "Job {number} at {locality}. " + "x" * 120, {"number": "1234567", "locality": LONG_ADDRESS}, max_segments=1
    )
    assert segments(text) == 1
    assert text.startswith("Job 1234567 at Flat 4B")


def test_a_template_too_long_on_its_own_names_its_length() -> None:
    with pytest.raises(SmsTooLong, match=r"SMS template is 140 UTF-16 units") as caught:
        render(HI * 140 + "{address}", {"address": "Gomti Nagar"})
    assert caught.value.template_length == 140
    assert caught.value.max_segments == 2
    with pytest.raises(SmsTooLong, match="140 UTF-16 units without its values and 140 with them"):
        render(HI * 140 + "{address}", {"address": ""})  # an empty value gains no ellipsis


def test_check_templates_finds_no_problem_in_a_short_template() -> None:
    templates = {"already_taken": ("सेवामित्र: काम {number} किसी और ने ले लिया है।", "Job {number} is taken.")}
    assert check_templates(templates, sms_text.TYPICAL_VALUES) == []


def test_check_templates_reports_fixed_text_over_two_segments() -> None:
    problems = check_templates({"long": (HI * 135, "ok {number}")}, sms_text.TYPICAL_VALUES)
    assert problems == ["long.hi: error: fixed text alone is 135 UTF-16 units, over 2 UCS-2 segments (134)"]


def test_check_templates_warns_when_typical_values_would_be_shortened() -> None:
    problems = check_templates({"assigned_worker": (WORKER_HI, WORKER_EN)}, sms_text.TYPICAL_VALUES)
    assert problems == [
        "assigned_worker.hi: warning: 149 UTF-16 units with typical values, over 2 segments (134); "
        "values will be shortened"
    ]


def test_check_templates_reports_a_placeholder_without_a_sample() -> None:
    problems = check_templates({"x": ("{number} {eta}", "{number}")}, sms_text.TYPICAL_VALUES)
    assert problems == ["x.hi: error: no sample value for {eta}"]


def test_check_templates_warns_about_english_sent_as_ucs2() -> None:
    problems = check_templates({"x": ("काम {number}", "Your job’s number is {number}…")}, sms_text.TYPICAL_VALUES)
    assert problems == ["x.en: warning: English text is sent as UCS-2 (70 a segment) because of '’…'"]


def shipped_templates() -> dict[str, tuple[str, str]]:
    settings = load_settings(ROOT / "config.yaml", {})
    return {name: (t.hi, t.en) for name, t in settings.sms.templates.items()}


@pytest.mark.parametrize(
    ("name", "language"),
    [(name, language) for name in shipped_templates() for language in ("hi", "en")],
)
def test_every_shipped_template_fits_two_segments_with_typical_values(name: str, language: str) -> None:
    hi, en = shipped_templates()[name]
    only = (hi, "{number}") if language == "hi" else ("{number}", en)
    assert check_templates({name: only}, sms_text.TYPICAL_VALUES) == []


def test_no_shipped_template_is_too_long_on_its_own() -> None:
    problems = check_templates(shipped_templates(), sms_text.TYPICAL_VALUES)
    assert [p for p in problems if ": error:" in p] == []


def test_every_shipped_template_renders_within_two_segments_even_with_hostile_values() -> None:
    hostile = {name: (sms_text.TYPICAL_VALUES[name] + " ") * 40 + "\n{code}" for name in sms_text.SHRINKABLE}
    values = {**sms_text.TYPICAL_VALUES, **hostile}
    for hi, en in shipped_templates().values():
        for template in (hi, en):
            text = render(template, values)
            assert segments(text) <= 2
            assert "\n" not in text


SAFE = "aZ09 ,.-{}[]~^\\|€@£…’" + "नमस्तेकाम्ँंः" + EMOJI
HOSTILE = SAFE + "\n\t\r\x00\x1b\u200b\u202e\ufeff"


def random_text(rng: random.Random, longest: int, palette: str = HOSTILE) -> str:
    return "".join(rng.choice(palette) for _ in range(rng.randint(0, longest)))


def test_random_values_always_render_within_budget_or_raise_sms_too_long() -> None:
    rng = random.Random(155330)
    for _ in range(300):
        template = random_text(rng, 200, SAFE.replace("{", "").replace("}", "")) + " {address} {worker} {number}"
        values = {"address": random_text(rng, 400), "worker": random_text(rng, 80), "number": random_text(rng, 10)}
        try:
            text = render(template, values)
        except SmsTooLong:
            assert segments(sms_text.fill(template, {"address": "", "worker": "", "number": values["number"]})) > 1
            continue
        assert segments(text) <= 2
        assert not any(c in text for c in "\n\t\r\x00\x1b\u200b\u202e\ufeff")


def test_random_text_segments_agree_with_the_lengths() -> None:
    rng = random.Random(7)
    for _ in range(500):
        text = random_text(rng, 400)
        single, part = sms_text.LIMITS[encoding(text)]
        if length(text) <= single:
            assert segments(text) == 1
        else:  # at most one unit per part is lost to a pair that cannot straddle
            assert -(-length(text) // part) <= segments(text) <= -(-length(text) // (part - 1))


def _one_by_one_clean(value: str) -> str:
    """`clean` as first written: a character at a time."""
    kept = [
        " " if char.isspace() else char
        for char in value[: sms_text.MAX_VALUE_CHARS]
        if char.isspace() or unicodedata.category(char) not in ("Cc", "Cf", "Cs") or char in "\u200c\u200d"
    ]
    return " ".join("".join(kept).split())


def _one_by_one_segments(text: str) -> int:
    """`segments` as first written: every character's width summed, then the parts filled in turn."""
    enc: sms_text.Encoding = (
        "GSM-7" if all(c in sms_text.GSM7_BASIC or c in sms_text.GSM7_EXTENSION for c in text) else "UCS-2"
    )
    widths = [
        (2 if c in sms_text.GSM7_EXTENSION else 1) if enc == "GSM-7" else (2 if ord(c) > 0xFFFF else 1) for c in text
    ]
    single, part = sms_text.LIMITS[enc]
    if sum(widths) <= single:
        return 1
    count, used = 1, 0
    for width in widths:
        if used + width > part:
            count, used = count + 1, 0
        used += width
    return count


# Every kind of character the counts tell apart: GSM-7's own and its escapes, Devanagari with its
# joiners, a pair, a lone surrogate, spaces of every kind, controls, marks and an unassigned point.
EVERY_KIND = SAFE + "\u200c\u200d\u00a0\u2003\u3000\u2028\x85\x1c\t\n\x00\u200b\u202e\ufeff\ud800\ue000\U000e0001\u0378"


def test_the_counts_made_by_strs_own_methods_are_those_made_a_character_at_a_time() -> None:
    rng = random.Random(20261207)
    palettes = [EVERY_KIND, SAFE.replace(EMOJI, ""), "aZ09 {}€", "aZ09 .,", HI + " ", HI + EMOJI]
    for _ in range(3000):
        text = random_text(rng, 400, rng.choice(palettes))
        assert sms_text.clean(text) == _one_by_one_clean(text), repr(text)
        assert segments(text) == _one_by_one_segments(text), repr(text)
        assert length(text) == sum(
            (2 if c in sms_text.GSM7_EXTENSION else 1) if encoding(text) == "GSM-7" else (2 if ord(c) > 0xFFFF else 1)
            for c in text
        )


# -- the visit's slot (issue 19) -------------------------------------------------------------------------

SHIPPED = load_settings(ROOT / "config.yaml", {})


@pytest.mark.parametrize(
    ("language", "slot", "locality"),
    [
        ("en", "28 Nov afternoon (12:00-16:00)", "Gautam Buddha Nagar 201301"),
        ("hi", "28 नवंबर दोपहर (12:00-16:00)", "गौतम बुद्ध नगर 201301"),
        ("hi", "जल्द से जल्द", "गौतम बुद्ध नगर 201301"),
    ],
)
def test_the_confirmation_and_the_offer_carry_the_slot_whole_in_two_parts(
    language: str, slot: str, locality: str
) -> None:
    values = {"number": "1234567", "service": "इलेक्ट्रीशियन" if language == "hi" else "Electrician"}
    values |= {"slot": slot, "locality": locality}
    for template in ("request_created", "offer"):
        body = sms_text.compose(SHIPPED, template, language, values)
        assert slot in body, body
        assert values["service"] in body
        assert segments(body) <= 2


def test_the_offer_in_english_says_where_and_when_in_one_part() -> None:
    values = {"number": "9876543", "service": "Plumber", "locality": "Lucknow 226001"}
    body = sms_text.compose(SHIPPED, "offer", "en", {**values, "slot": "tomorrow evening (16:00-20:00)"})
    assert body == (
        "Sewamitra job 9876543: Plumber at Lucknow 226001, tomorrow evening (16:00-20:00). "
        "Reply 1 to accept, 2 to decline, or call 155330."
    )
    assert segments(body) == 1


def test_the_changed_texts_have_new_dlt_template_ids() -> None:
    """A DLT template id is registered for one text: a text changed keeps none of the old ids."""
    ids = {name: template.dlt_template_id for name, template in SHIPPED.sms.templates.items()}
    assert (ids["request_created"], ids["offer"], ids["assigned_worker"]) == (
        "1107160000000000030",
        "1107160000000000031",
        "1107160000000000032",
    )
    assert len(set(ids.values())) == len(ids)
