# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
# pytest-xdist's processes for the suite: six on the two cores CI and the developers have, as the
# tests wait on PostgreSQL, Redis, sockets and child processes about half the time. On the AMD EPYC
# machine, with warm caches, one run each back to back: 4 took 291.7 s, 6 took 264.8 s, 8 took 304.2 s
# (more CPU lost to switching than waits filled); the same code took 262 to 387 s over the day, so
# only runs side by side compare. Each process uses the Redis database after the previous one's:
# TEST_REDIS_URL's, and the next five; 0 runs it in one.
TEST_PROCESSES ?= 6
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Python keeps its bytecode (`__pycache__`, ignored by git) whatever the shell says: with
# PYTHONDONTWRITEBYTECODE set, as on CI's machines, every process the suite starts (xdist's, each
# `sewamitra up`'s web, RQ and scheduler processes, the chaos tests') compiled the helpline's 40,000
# lines again, about half a second of CPU each, and pytest rewrote every test module in each worker.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: run test lint clean

run: $(STAMP)
	$(BIN)/sewamitra up

# No Debian Chromium (chromium-headless-shell or chromium): the browser tests drive Playwright's own,
# downloaded here when it can be.
test: $(STAMP) lint
	@test -x /usr/bin/chromium-headless-shell || test -x /usr/bin/chromium || $(BIN)/playwright install chromium >$(VENV)/playwright-install.log 2>&1 \
	  || echo "make test: could not download Playwright's Chromium (see $(VENV)/playwright-install.log)"
	$(BIN)/pytest -n $(TEST_PROCESSES) --dist loadgroup

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/sewamitra flows check

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $(STAMP)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
