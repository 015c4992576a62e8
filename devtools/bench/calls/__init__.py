"""`sewamitra bench calls`: many simulated callers at once against the helpline under gunicorn, on
real PostgreSQL and Redis, beside a bare Flask baseline measured in the same run."""
