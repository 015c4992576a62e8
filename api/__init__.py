"""The helpline for other systems: a JSON API under /api/v1 and Open311 GeoReport v2 under /open311/v2."""
