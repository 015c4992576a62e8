"""The SQL baseline of `sewamitra bench dispatch`'s matching: what a user would ask PostgreSQL for
"the nearest eligible worker". Where the server has PostGIS (Debian: postgresql-15-postgis-3), its
KNN search: the index's workers copied into a table of points per skill under a GiST index, and
`ORDER BY place <-> point LIMIT 10` within `ST_DWithin` of the search radius. Where it has not, a
haversine scan of every worker of the skill, with no spatial index."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from core.settings import Dispatch

LIMIT = 10
# Redis GEO measures with this earth radius; both queries use it too, so they agree with it to the metre.
REDIS_EARTH_KM = 6372.797560856
# PostGIS measures a geography on the sphere of the WGS 84 mean radius (KNN uses the sphere, never
# the spheroid); its metres times this are Redis's.
POSTGIS_EARTH_KM = 6371.0087714150598
TO_REDIS_KM = REDIS_EARTH_KM / POSTGIS_EARTH_KM / 1000
INSTALL = "Debian: apt-get install postgresql-15-postgis-3"


@dataclass(frozen=True)
class Baseline:
    """One SQL query for the nearest eligible workers of a skill, and what the report calls it."""

    name: str
    query: sa.TextClause

    def nearest(
        self,
        connection: sa.Connection,
        latitude: float,
        longitude: float,
        skill: str,
        rules: Dispatch,
        search_km: float,
    ) -> list[sa.Row[Any]]:
        """Up to LIMIT workers (`id`, `km`, `reach`) who serve the spot, nearest first."""
        params = {
            "skill": skill,
            "lat": latitude,
            "lon": longitude,
            "earth": REDIS_EARTH_KM,
            "to_km": TO_REDIS_KM,
            "search_m": search_km / TO_REDIS_KM,
            "default_radius": rules.default_radius_km,
            "parallel": rules.allow_parallel_jobs,
            "limit": LIMIT,
        }
        return list(connection.execute(self.query, params).all())


SCAN = sa.text(
    """
    SELECT w.id, d.km, coalesce(nullif(w.service_radius_km, 0), :default_radius) AS reach
    FROM worker AS w
    JOIN worker_skill AS s ON s.worker_id = w.id AND s.service_code = :skill
    CROSS JOIN LATERAL (SELECT 2 * :earth * asin(least(1, sqrt(
        power(sin(radians(w.latitude - :lat) / 2), 2)
        + cos(radians(:lat)) * cos(radians(w.latitude)) * power(sin(radians(w.longitude - :lon) / 2), 2)
    ))) AS km) AS d
    WHERE w.active AND w.available AND w.police_verification = 'verified'
      AND d.km <= coalesce(nullif(w.service_radius_km, 0), :default_radius)
      AND (:parallel OR NOT EXISTS (
          SELECT 1 FROM service_request AS r WHERE r.worker_id = w.id AND r.status = 'assigned'))
    ORDER BY d.km, w.id
    LIMIT :limit
    """
)

KNN = sa.text(
    """
    SELECT p.worker_id AS id, p.reach_km AS reach,
           (p.place <-> ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography) * :to_km AS km
    FROM worker_place AS p
    WHERE p.service_code = :skill
      AND ST_DWithin(p.place, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography, :search_m, false)
      AND (p.place <-> ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography) * :to_km <= p.reach_km
    ORDER BY p.place <-> ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography
    LIMIT :limit
    """
)
SCAN_BASELINE = Baseline("haversine scan, no spatial index", SCAN)

# The workers the GEO index holds (offerable: active, available, police-verified, not on a job unless
# parallel jobs are allowed), one row a skill, as the index has one set a skill.
PLACES = (
    "CREATE EXTENSION IF NOT EXISTS postgis",
    "CREATE EXTENSION IF NOT EXISTS btree_gist",  # text in a GiST index: the skill beside the point
    """
    CREATE TABLE worker_place (
        worker_id integer NOT NULL, service_code text NOT NULL, reach_km double precision NOT NULL,
        place geography(Point, 4326) NOT NULL)
    """,
    """
    INSERT INTO worker_place
    SELECT w.id, s.service_code, coalesce(nullif(w.service_radius_km, 0), :default_radius),
           ST_SetSRID(ST_MakePoint(w.longitude, w.latitude), 4326)::geography
    FROM worker AS w JOIN worker_skill AS s ON s.worker_id = w.id
    WHERE w.active AND w.available AND w.police_verification = 'verified' AND w.latitude IS NOT NULL
      AND (:parallel OR NOT EXISTS (
          SELECT 1 FROM service_request AS r WHERE r.worker_id = w.id AND r.status = 'assigned'))
    """,
    "CREATE INDEX worker_place_knn ON worker_place USING gist (service_code, place)",
    "ANALYZE worker_place",
)


def postgis_version(engine: sa.Engine) -> str | None:
    """The PostGIS the server can install, if it has both it and btree_gist; else None."""
    with engine.connect() as connection:
        found: dict[str, str] = dict(
            connection.execute(
                sa.text(
                    "SELECT name, default_version FROM pg_available_extensions WHERE name IN ('postgis', 'btree_gist')"
                )
            ).all()
        )
    return found["postgis"] if "btree_gist" in found and "postgis" in found else None


def prepare(engine: sa.Engine, rules: Dispatch) -> Baseline:
    """PostGIS's KNN over the index's workers, built now, where the server has PostGIS; else the scan."""
    version = postgis_version(engine)
    if version is None:
        return Baseline(f"{SCAN_BASELINE.name} (PostGIS is not installed: {INSTALL})", SCAN)
    params = {"default_radius": rules.default_radius_km, "parallel": rules.allow_parallel_jobs}
    with engine.begin() as connection:
        for statement in PLACES:
            connection.execute(sa.text(statement), params)
    return Baseline(f"PostGIS {version} KNN (GiST on skill and point, ORDER BY <-> LIMIT {LIMIT}, ST_DWithin)", KNN)
