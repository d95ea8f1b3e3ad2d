# The two quickstart commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-turnout

.PHONY: install run test lint format bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# Re-install whenever pyproject.toml changes.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## Turnout on SQLite (./turnout.db) + a real Envoy + two demo upstreams, split 90/10.
run: $(STAMP)
	$(VENV)/bin/turnout demo

## The whole test suite (unit + integration with a real Envoy).
test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

## Benchmarks print figures and write JSON to bench/results/; never part of `make test`.
bench: $(STAMP)
	$(PY) bench/envoy_floor.py --changes 200 --envoys 1 20
	$(PY) bench/write_to_served.py --changes 200 --envoys 1 20
	$(PY) bench/write_to_served.py --changes 30 --envoys 1 --present 10000
	$(PY) bench/admin_write.py --writes 500
	$(PY) bench/translate.py --sizes 1000 10000 --runs 5
	$(PY) bench/bulk_routes.py --routes 1000 --repeat 5
	$(PY) bench/ads_load.py --streams 1000 5000 --streams-per-channel 500 --changes 3
	PYTHONPATH=. $(PY) bench/cross_replica.py
	$(PY) bench/keys_translate.py
	$(PY) bench/keys_to_envoy.py
	$(PY) bench/keys_floor.py
	$(PY) bench/ratelimit_rps.py
	PYTHONPATH=. $(PY) bench/revisions.py
	$(PY) bench/ui_pages.py --redis-url $${TURNOUT_REDIS_URL:-redis://127.0.0.1:6379/0}
	$(PY) bench/hostile.py --label after
	$(PY) bench/table.py --write

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .run build *.egg-info
