# Meterdesk. `make demo` and `make test` each work alone from a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: demo test contract reliability lint format bench run worker beat emulator migrate install clean

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
## On TEST_WORKERS pytest-xdist processes, each with its own test database, Redis
## database and emulator (tests/conftest.py, config/settings/test.py). One test alone:
## make test TEST_WORKERS=0 PYTEST_ARGS="tests/x.py::test_y"
TEST_WORKERS ?= 3
test: $(STAMP)
	$(BIN)/python -m pytest --ds=config.settings.test -n $(TEST_WORKERS) --dist loadgroup \
		$(PYTEST_ARGS)

## The contract suite (tests/contract/): the Stripe behaviour Meterdesk relies on, against
## the emulator and, when STRIPE_CONTRACT_SECRET_KEY=sk_test_... is set, real Stripe test
## mode (skipped with the reason otherwise). A live-mode key is refused before anything runs.
contract: $(STAMP)
	@case "$$STRIPE_CONTRACT_SECRET_KEY" in sk_live_*|rk_live_*) \
		echo "make contract: refusing a live-mode STRIPE_CONTRACT_SECRET_KEY; the suite runs only against Stripe test mode (sk_test_... or rk_test_...)" >&2; \
		exit 2;; esac
	@# COLUMNS: pytest -v prints a skip's reason on the test's line only if it fits the width
	COLUMNS="$${COLUMNS:-200}" $(BIN)/python -m pytest --ds=config.settings.test -p no:cacheprovider \
		-v tests/contract $(PYTEST_ARGS)

## The fault matrix (tests/reliability/) at full scale, on PostgreSQL + Redis (DATABASE_URL
## and REDIS_URL default to the local services, as in .ci/run; each case starts its own
## redis-server, and the PostgreSQL crash its own cluster): 40,000 events a case under
## Stripe 429/5xx, timeouts after Stripe recorded, worker SIGKILLs, Redis and PostgreSQL
## crash-restarts, and the webhook during a Redis outage. Prints the table
## (var/reliability/results.json) and the wall time; under 10 minutes on 2 cores.
reliability: $(STAMP)
	@mkdir -p var/reliability && rm -f var/reliability/results.json
	@start=$$(date +%s); \
	DATABASE_URL="$${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}" \
	REDIS_URL="$${REDIS_URL:-redis://127.0.0.1:6379/0}" MD_RELIABILITY_FULL=1 \
	$(BIN)/python -m pytest --ds=config.settings.test -m reliability -q -p no:cacheprovider \
		tests/reliability $(PYTEST_ARGS); \
	status=$$?; \
	$(BIN)/python -m tests.reliability.report --seconds $$(( $$(date +%s) - start )); \
	exit $$status

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
