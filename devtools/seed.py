"""Demo data: Uttar Pradesh districts, agencies and workers, the same for the same seed.

Every draw comes from one local `random.Random(seed)` in a fixed order (sorted districts, the
catalogue's order), so two databases seeded with one number hold the same people. The names are
drawn from the lists in devtools/data/ (one name a line), read when a seed runs.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sqlmodel import Session, select

from core import pincodes
from core.exceptions import SewamitraError
from core.phones import indian_mobile, to_e164
from core.pincodes import Place
from core.settings import Settings
from storage.models import District, Origin, Provider, VerificationStatus, Worker, WorkerSkill

Progress = Callable[[int, int], None]


BATCH = 200
WOMEN_SHARE = 0.17
BIG_CITIES = {
    "LUCKNOW": 8,
    "KANPUR NAGAR": 7,
    "GHAZIABAD": 6,
    "GAUTAM BUDDHA NAGAR": 6,
    "AGRA": 5,
    "VARANASI": 5,
    "PRAYAGRAJ": 5,
    "MEERUT": 4,
}
STATE_CODES = {"UTTAR PRADESH": "UP"}
DISTRICT_CODES = {
    "LUCKNOW": "LKO",
    "KANPUR NAGAR": "KNP",
    "KANPUR DEHAT": "KPD",
    "GHAZIABAD": "GZB",
    "GAUTAM BUDDHA NAGAR": "GBN",
    "AGRA": "AGR",
    "VARANASI": "VNS",
    "PRAYAGRAJ": "PRJ",
    "MEERUT": "MRT",
    "GORAKHPUR": "GKP",
    "BAREILLY": "BLY",
    "MORADABAD": "MBD",
    "JHANSI": "JHS",
    "SHRAVASTI": "SRV",
}
STD_CODES = {
    "LUCKNOW": "522",
    "KANPUR NAGAR": "512",
    "AGRA": "562",
    "VARANASI": "542",
    "PRAYAGRAJ": "532",
    "MEERUT": "121",
    "GHAZIABAD": "120",
    "GAUTAM BUDDHA NAGAR": "120",
    "GORAKHPUR": "551",
    "BAREILLY": "581",
    "ALIGARH": "571",
    "MORADABAD": "591",
    "JHANSI": "510",
    "MATHURA": "565",
}

MEN_SKILLS = {
    "plumber": 24,
    "electrician": 24,
    "carpenter": 14,
    "painter": 11,
    "appliance_repair": 13,
    "cleaning": 6,
    "pest_control": 3,
    "beautician": 1,
}
WOMEN_SKILLS = {
    "beautician": 50,
    "cleaning": 28,
    "appliance_repair": 5,
    "electrician": 4,
    "painter": 3,
    "plumber": 2,
    "carpenter": 1,
    "pest_control": 1,
}
OTHER_SKILL_WEIGHT = 5
PLAIN_AGENCIES = 3  # the weight of a name that ends at its trade, against 1 for each of the agency forms

DATA = Path(__file__).with_name("data")

CERTIFICATIONS = ("RPL (PMKVY)", "RPL (PMKVY)", "NCVT (CTS)", "ITI certificate", "DDU-GKY", "Skill India (NSDC)")
KNOWN_ITIS = {
    "LUCKNOW": "ITI Aliganj, Lucknow",
    "KANPUR NAGAR": "ITI Pandu Nagar, Kanpur",
    "VARANASI": "ITI Karaundi, Varanasi",
    "PRAYAGRAJ": "ITI Naini, Prayagraj",
}
REJECTION_NOTES = (
    "Address could not be confirmed by the local police station",
    "Pending criminal case disclosed in the verification report",
    "Identity documents did not match Aadhaar records",
    "Did not appear for verification within 90 days",
)
RADII_KM = (5.0, 8.0, 10.0, 12.0, 15.0)


@dataclass(frozen=True)
class Names:
    """The name lists of devtools/data/, one name a line; the draws pick by position, so their order
    is part of what a seed number gives."""

    hindu_men: tuple[str, ...]
    hindu_women: tuple[str, ...]
    hindu_middle_names: tuple[str, ...]
    hindu_surnames: tuple[str, ...]
    muslim_men: tuple[str, ...]
    muslim_women: tuple[str, ...]
    muslim_surnames: tuple[str, ...]
    muslim_women_surnames: tuple[str, ...]  # only women's; they take the men's too
    sikh_men: tuple[str, ...]
    sikh_women: tuple[str, ...]
    christian_men: tuple[str, ...]
    christian_women: tuple[str, ...]
    agency_prefixes: tuple[str, ...]
    agency_trades: tuple[str, ...]
    agency_forms: tuple[str, ...]  # what may follow the trade: Pvt Ltd, & Sons…

    @classmethod
    def read(cls, folder: Path = DATA) -> Names:
        return cls(**{field.name: listed(folder / f"{field.name}.txt") for field in fields(cls)})

    @property
    def agency_endings(self) -> tuple[str, ...]:
        return ("",) * PLAIN_AGENCIES + tuple(f" {form}" for form in self.agency_forms)


def listed(path: Path) -> tuple[str, ...]:
    """The names in a UTF-8 file, one a line, in the file's order; blank lines are skipped."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SewamitraError(f"cannot read the demo names in {path}: {exc}") from None
    names = tuple(line.strip() for line in text.splitlines() if line.strip())
    if not names:
        raise SewamitraError(f"{path} lists no names")
    return names


@dataclass(frozen=True)
class SeedSummary:
    """What a seed put in, for the operator to read back."""

    districts: int
    providers: int
    workers: int
    verified: int
    pending: int
    rejected: int
    available: int
    certified: int
    skills: tuple[tuple[str, int], ...]

    def __str__(self) -> str:
        return (
            f"{self.districts} districts, {self.providers} providers, {self.workers} workers "
            f"({self.verified} police-verified, {self.pending} pending, {self.rejected} rejected; "
            f"{self.available} available, {self.certified} certified)"
        )


@dataclass(frozen=True)
class Area:
    """The service area as the India Post directory draws it: districts and their PIN codes."""

    state: str
    districts: tuple[str, ...]
    places: dict[str, tuple[Place, ...]]

    @classmethod
    def of(cls, state: str) -> Area:
        names = tuple(pincodes.districts(state))
        places: dict[str, list[Place]] = {name: [] for name in names}
        for pin in pincodes.pincodes(state):
            place = pincodes.lookup(pin)
            if place and place.latitude is not None and place.district in places:
                places[place.district].append(place)
        return cls(state.upper(), names, {name: tuple(found) for name, found in places.items()})

    def centre(self, district: str) -> tuple[float, float]:
        found = self.places[district]
        if not found:
            return (0.0, 0.0)
        return (
            sum(p.latitude or 0.0 for p in found) / len(found),
            sum(p.longitude or 0.0 for p in found) / len(found),
        )

    def populated(self) -> tuple[str, ...]:
        """Districts with at least one PIN code on the map, where a worker can live."""
        return tuple(name for name in self.districts if self.places[name])


def is_seeded(session: Session) -> bool:
    """Whether workers exist: demo data must never mix with a live pool."""
    return session.exec(select(Worker.id).limit(1)).first() is not None


def seed(
    session: Session,
    settings: Settings,
    *,
    seed: int = 155330,
    providers: int = 80,
    workers: int = 800,
    progress: Progress | None = None,
    today: date | None = None,
) -> SeedSummary:
    """Fill an empty database with a believable pool; flushes, the caller commits."""
    if is_seeded(session):
        raise SewamitraError("the database already holds workers; seed only an empty database")
    if providers < 0 or workers < 0:
        raise SewamitraError("the numbers of providers and workers cannot be negative")
    rng = random.Random(seed)
    area = Area.of(settings.service_area.state)
    if not area.populated():
        raise SewamitraError(f"the India Post directory has no PIN codes for {area.state!r}; check service_area.state")
    names = Names.read()
    district_count = _ensure_districts(session, area)
    phones = PhoneBook(rng)
    agencies = _add_providers(session, rng, area, phones, names, providers)
    people = Generator(rng, settings, area, phones, names, today or date.today())
    added = _add_workers(session, people, agencies, _worker_districts(rng, area, workers), progress)
    return _summary(district_count, len(agencies), added)


def _ensure_districts(session: Session, area: Area) -> int:
    known = set(session.exec(select(District.name)).all())
    session.add_all(District(name=name, state=area.state) for name in area.districts if name not in known)
    session.flush()
    return len(area.districts)


class PhoneBook:
    """Numbers that pass the same checks a real registration does, never handed out twice."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.taken: set[str] = set()

    def mobile(self) -> str:
        return self._draw(lambda: indian_mobile(self.rng.choice("6789") + self._digits(9)))

    def landline(self, std_code: str) -> str:
        return self._draw(lambda: to_e164(f"0{std_code}2{self._digits(9 - len(std_code))}"))

    def _digits(self, count: int) -> str:
        return "".join(self.rng.choice("0123456789") for _ in range(count))

    def _draw(self, make: Callable[[], str | None]) -> str:
        while True:
            number = make()
            if number and number not in self.taken:
                self.taken.add(number)
                return number


def _add_providers(
    session: Session, rng: random.Random, area: Area, phones: PhoneBook, names: Names, count: int
) -> list[Provider]:
    taken = set(session.exec(select(Provider.name)).all())
    agencies = []
    for district in _weighted_districts(rng, area, count, every=False):
        name = _agency_name(rng, names, district, taken)
        agencies.append(Provider(name=name, district=district, phone=_agency_phone(rng, phones, district)))
    session.add_all(agencies)
    session.flush()
    return agencies


def _agency_name(rng: random.Random, names: Names, district: str, taken: set[str]) -> str:
    for attempt in range(100):
        prefix = pincodes.display_name(district) if rng.random() < 0.15 else rng.choice(names.agency_prefixes)
        name = f"{prefix} {rng.choice(names.agency_trades)}{rng.choice(names.agency_endings)}"
        if attempt >= 50:
            name = f"{name} ({pincodes.display_name(district)} {attempt})"
        if name not in taken:
            taken.add(name)
            return name
    raise SewamitraError("could not make a unique agency name; ask for fewer providers")


def _agency_phone(rng: random.Random, phones: PhoneBook, district: str) -> str:
    std_code = STD_CODES.get(district)
    if std_code and rng.random() < 0.6:
        return phones.landline(std_code)
    return phones.mobile()


def _weighted_districts(rng: random.Random, area: Area, count: int, *, every: bool) -> list[str]:
    """`count` districts, big cities more often; with `every`, each district a few times first."""
    names = area.populated()
    chosen = list(names) * min(3, count // len(names)) if every and names else []
    weights = [BIG_CITIES.get(name, 1) for name in names]
    chosen += rng.choices(names, weights=weights, k=count - len(chosen))
    return chosen


def _worker_districts(rng: random.Random, area: Area, count: int) -> list[str]:
    chosen = _weighted_districts(rng, area, count, every=True)
    rng.shuffle(chosen)
    return chosen


class Generator:
    """Makes one plausible worker at a time from the shared random stream."""

    def __init__(
        self, rng: random.Random, settings: Settings, area: Area, phones: PhoneBook, names: Names, today: date
    ):
        self.rng = rng
        self.area = area
        self.phones = phones
        self.names = names
        self.today = today
        self.codes = tuple(service.code for service in settings.services)
        self.languages = tuple(language.code for language in settings.languages)
        self.state_code = STATE_CODES.get(area.state) or _initials(area.state)

    def worker(self, district: str, provider: Provider | None) -> tuple[Worker, list[str]]:
        name, woman = self.person()
        place = self.rng.choice(self.area.places[district])
        checked = self.verification(district)
        fields = {
            "name": name,
            "phone": self.phones.mobile(),
            "pincode": place.pincode,
            "district": place.district,
            "latitude": place.latitude,
            "longitude": place.longitude,
            "provider_id": provider.id if provider else None,
            **self.habits(),
            **checked,
            **self.certification(district),
            **self.rating(checked["police_verification"]),
        }
        return Worker(**fields), self.skills(woman)

    def person(self) -> tuple[str, bool]:
        woman = self.rng.random() < WOMEN_SHARE
        community = self.rng.choices(("hindu", "muslim", "sikh", "christian"), weights=(78, 19, 2, 1))[0]
        return _NAMERS[community](self.rng, self.names, woman), woman

    def skills(self, woman: bool) -> list[str]:
        table = WOMEN_SKILLS if woman else MEN_SKILLS
        weights = [table.get(code, OTHER_SKILL_WEIGHT) for code in self.codes]
        first = self.rng.choices(self.codes, weights=weights)[0]
        if self.rng.random() >= 0.35 or len(self.codes) < 2:
            return [first]
        rest = [(code, weight) for code, weight in zip(self.codes, weights, strict=True) if code != first]
        second = self.rng.choices([c for c, _ in rest], weights=[w for _, w in rest])[0]
        return [first, second]

    def habits(self) -> dict[str, Any]:
        rng = self.rng
        main = "hi" if "hi" in self.languages else self.languages[0]
        others = [code for code in self.languages if code != main]
        return {
            "language": rng.choice(others) if others and rng.random() < 0.08 else main,
            "voice_preferred": rng.random() < 0.2,
            "available": rng.random() < 0.7,
            "origin": Origin.RETURNED_MIGRANT if rng.random() < 0.25 else Origin.LOCAL,
            "service_radius_km": rng.choice(RADII_KM) if rng.random() < 0.2 else None,
        }

    def verification(self, district: str) -> dict[str, Any]:
        draw = self.rng.random()
        if draw < 0.1:
            return {"police_verification": VerificationStatus.PENDING}
        if draw < 0.13:
            note = self.rng.choice(REJECTION_NOTES)
            return {"police_verification": VerificationStatus.REJECTED, "police_note": note, "available": False}
        verified_on = self.today - timedelta(days=self.rng.randrange(7, 730))
        serial = self.rng.randrange(1, 20000)
        reference = f"{self.state_code}/{district_code(district)}/{verified_on.year}/{serial:06d}"
        return {
            "police_verification": VerificationStatus.VERIFIED,
            "police_verified_on": verified_on,
            "police_reference": reference,
        }

    def certification(self, district: str) -> dict[str, Any]:
        if self.rng.random() >= 0.4:
            return {}
        institution = KNOWN_ITIS.get(district) if self.rng.random() < 0.5 else None
        if institution is None:
            kind = self.rng.choice(("Government ITI", "Pradhan Mantri Kaushal Kendra"))
            institution = f"{kind}, {pincodes.display_name(district)}"
        return {
            "certification": self.rng.choice(CERTIFICATIONS),
            "certification_grade": self.rng.choices("ABC", weights=(3, 5, 2))[0],
            "certifying_institution": institution,
        }

    def rating(self, status: VerificationStatus) -> dict[str, Any]:
        """Only verified workers get jobs, so only they can have been rated."""
        if status != VerificationStatus.VERIFIED or self.rng.random() < 0.12:
            return {"rating": None, "rating_count": 0}
        rating = round(min(5.0, max(3.0, self.rng.gauss(4.2, 0.45))), 1)
        return {"rating": rating, "rating_count": min(400, int(self.rng.expovariate(1 / 40)) + 1)}


def _hindu(rng: random.Random, names: Names, woman: bool) -> str:
    if woman:
        first = rng.choice(names.hindu_women)
        last = rng.choices(("Devi", "Kumari", rng.choice(names.hindu_surnames)), weights=(40, 15, 45))[0]
        return f"{first} {last}"
    first, surname = rng.choice(names.hindu_men), rng.choice(names.hindu_surnames)
    if " " in first or surname == "Kumar" or rng.random() >= 0.3:
        return f"{first} {surname}"
    return f"{first} {rng.choice(names.hindu_middle_names)} {surname}"


def _muslim(rng: random.Random, names: Names, woman: bool) -> str:
    if woman:
        return f"{rng.choice(names.muslim_women)} {rng.choice(names.muslim_women_surnames + names.muslim_surnames)}"
    first = rng.choice(names.muslim_men)
    prefix = "Mohd. " if " " not in first and rng.random() < 0.3 else ""
    return f"{prefix}{first} {rng.choice(names.muslim_surnames)}"


def _sikh(rng: random.Random, names: Names, woman: bool) -> str:
    return f"{rng.choice(names.sikh_women)} Kaur" if woman else f"{rng.choice(names.sikh_men)} Singh"


def _christian(rng: random.Random, names: Names, woman: bool) -> str:
    return f"{rng.choice(names.christian_women if woman else names.christian_men)} Masih"


_NAMERS: dict[str, Callable[[random.Random, Names, bool], str]] = {
    "hindu": _hindu,
    "muslim": _muslim,
    "sikh": _sikh,
    "christian": _christian,
}


def district_code(district: str) -> str:
    """The three letters police references use: LKO for Lucknow, else from the name."""
    if district in DISTRICT_CODES:
        return DISTRICT_CODES[district]
    words = district.split()
    if len(words) > 1:
        return (words[0][:2] + words[1][0]).upper()
    code = words[0][0] + "".join(c for c in words[0][1:] if c not in "AEIOU")
    return (code if len(code) >= 3 else words[0])[:3].upper()


def _initials(name: str) -> str:
    return "".join(word[0] for word in name.split()).upper()


def _nearby_providers(area: Area, agencies: list[Provider]) -> dict[str, list[Provider]]:
    """For each district: its own agencies, else those of the nearest district that has any."""
    by_district: dict[str, list[Provider]] = {}
    for agency in agencies:
        by_district.setdefault(agency.district or "", []).append(agency)
    if not by_district:
        return {}
    centres = {name: area.centre(name) for name in area.districts}

    def nearest(name: str) -> list[Provider]:
        return by_district[min(sorted(by_district), key=lambda other: _distance(centres, name, other))]

    return {name: by_district.get(name) or nearest(name) for name in area.districts}


def _distance(centres: dict[str, tuple[float, float]], a: str, b: str) -> float:
    (lat_a, lon_a), (lat_b, lon_b) = centres[a], centres.get(b, (0.0, 0.0))
    return math.hypot(lat_a - lat_b, (lon_a - lon_b) * math.cos(math.radians(lat_a)))


def _add_workers(
    session: Session,
    people: Generator,
    agencies: list[Provider],
    districts: list[str],
    progress: Progress | None,
) -> list[tuple[Worker, list[str]]]:
    nearby = _nearby_providers(people.area, agencies)
    added: list[tuple[Worker, list[str]]] = []
    for start in range(0, len(districts), BATCH):
        batch = [_one(people, nearby, district) for district in districts[start : start + BATCH]]
        _insert(session, batch)
        added += batch
        if progress:
            progress(len(added), len(districts))
    return added


def _one(people: Generator, nearby: dict[str, list[Provider]], district: str) -> tuple[Worker, list[str]]:
    choices = nearby.get(district)
    return people.worker(district, people.rng.choice(choices) if choices else None)


def _insert(session: Session, batch: list[tuple[Worker, list[str]]]) -> None:
    session.add_all(worker for worker, _ in batch)
    session.flush()
    session.add_all(
        WorkerSkill(worker_id=_saved(worker), service_code=code) for worker, codes in batch for code in codes
    )
    session.flush()


def _saved(worker: Worker) -> int:
    if worker.id is None:
        raise SewamitraError("a worker has no id after flush")
    return worker.id


def _summary(districts: int, providers: int, added: list[tuple[Worker, list[str]]]) -> SeedSummary:
    workers = [worker for worker, _ in added]
    counts = Counter(code for _, codes in added for code in codes)
    statuses = [worker.police_verification for worker in workers]
    return SeedSummary(
        districts=districts,
        providers=providers,
        workers=len(workers),
        verified=statuses.count(VerificationStatus.VERIFIED),
        pending=statuses.count(VerificationStatus.PENDING),
        rejected=statuses.count(VerificationStatus.REJECTED),
        available=sum(worker.available for worker in workers),
        certified=sum(worker.certification is not None for worker in workers),
        skills=tuple(sorted(counts.items())),
    )
