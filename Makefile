# Meterdesk. `make demo` and `make test` each work alone from a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: demo test lint format bench run worker beat emulator migrate install clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

## The demo: SQLite, the Stripe emulator, seeded data, a Celery worker with beat and
## the web server, with no services needed. Ctrl-C stops everything it started.
demo: $(STAMP)
	@bash scripts/demo.sh

## The whole test suite. Uses PostgreSQL / Redis when DATABASE_URL / REDIS_URL are set.
test: $(STAMP)
	$(BIN)/python -m pytest --ds=config.settings.test $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/python manage.py makemigrations --check --dry-run --settings=config.settings.test

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## The benchmarks on PostgreSQL + Redis (DATABASE_URL, default
## postgres://postgres@127.0.0.1:5432/meterdesk_bench, created and dropped; REDIS_URL,
## default redis://127.0.0.1:6379/2): one table, benchmarks/results/latest.json. About
## 10 minutes on 2 cores. BENCH_ARGS="--only ingest,sweep --sweep-accounts 2000" etc.
bench: $(STAMP)
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

migrate: $(STAMP)
	$(BIN)/python manage.py migrate

run: $(STAMP)
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

worker: $(STAMP)
	$(BIN)/python -c "from config.celery import ensure_embedded_broker_dirs as e; import django; django.setup(); e()"
	$(BIN)/celery -A config worker --loglevel=INFO

beat: $(STAMP)
	$(BIN)/python -c "from config.celery import ensure_embedded_broker_dirs as e; import django; django.setup(); e()"
	$(BIN)/celery -A config beat --loglevel=INFO

emulator: $(STAMP)
	$(BIN)/python -m stripe_emulator --host 127.0.0.1 --port 12111 --state var/emulator-state.json

clean:
	rm -rf var/celery var/meterdesk.sqlite3* var/emulator-state.json var/demo-logins.txt var/demo-ingest-key.txt var/log
