#!/usr/bin/env bash
# Starts the whole demo on the embedded defaults (SQLite, filesystem broker, the Stripe
# emulator), prints the URLs and logins, and stops every process it started on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
export DJANGO_SETTINGS_MODULE=config.settings.local
# The demo always runs on the embedded defaults, whatever this shell has set.
unset DATABASE_URL REDIS_URL
export STRIPE_API_HOST="${STRIPE_API_HOST:-http://127.0.0.1:12111}"
DEMO_STAFF_USER="${DEMO_STAFF_USER:-admin}"
DEMO_STAFF_PASSWORD="${DEMO_STAFF_PASSWORD:-meterdesk-admin}"
mkdir -p var/log

pids=()
stop_all() {
  trap - INT TERM EXIT
  echo
  echo "Stopping the demo..."
  for pid in "${pids[@]}"; do
    kill -TERM -- "-$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 50); do kill -0 -- "-$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  done
  echo "Stopped."
}
trap stop_all INT TERM EXIT

start() {  # start NAME COMMAND...: its own process group, output to var/log/NAME.log
  local name=$1; shift
  setsid "$@" >"var/log/$name.log" 2>&1 &
  pids+=("$!")
}

wait_http() {  # wait_http URL NAME
  for _ in $(seq 1 100); do
    if $BIN/python -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=1)" "$1" 2>/dev/null; then
      return 0
    fi
    sleep 0.2
  done
  echo "$2 did not start; see var/log/$2.log" >&2
  exit 1
}

$BIN/python manage.py migrate --no-input -v 0
$BIN/python manage.py ensure_staff_user --username "$DEMO_STAFF_USER" --password "$DEMO_STAFF_PASSWORD"
$BIN/python -c "import django; django.setup(); from config.celery import ensure_embedded_broker_dirs as e; e()"

start emulator $BIN/python -m stripe_emulator --host 127.0.0.1 --port 12111 --state var/emulator-state.json
wait_http "http://127.0.0.1:12111/_emulator/health" emulator
start web $BIN/python manage.py runserver 127.0.0.1:8000 --noreload
wait_http "http://127.0.0.1:8000/accounts/login/" web
# Seed before the worker starts: the history is replayed through the reporting pass
# as of past moments, which a live pass (worker beat) must not race.
echo "Seeding the demo through the emulator (about a minute the first time)..."
if ! $BIN/python manage.py demo_seed >var/log/seed.log 2>&1; then
  echo "Seeding failed; see var/log/seed.log" >&2
  tail -20 var/log/seed.log >&2
  exit 1
fi
start worker $BIN/celery -A config worker --beat --loglevel=INFO --concurrency=2 \
  --schedule var/celery/beat-schedule
start traffic $BIN/python manage.py demo_traffic --base-url http://127.0.0.1:8000

cat <<MSG

  Meterdesk demo is running.
    Dashboard      http://127.0.0.1:8000/dashboard/
    Admin          http://127.0.0.1:8000/admin/   (staff: $DEMO_STAFF_USER / $DEMO_STAFF_PASSWORD)
    Stripe emulator   http://127.0.0.1:12111/_emulator/health   (its API is for the app, not a browser)
    Logs           var/log/{web,worker,emulator,seed,traffic}.log
    Alert emails   printed in var/log/worker.log (console email backend)

  Press Ctrl-C to stop every process of the demo.
MSG
if [ -f var/demo-logins.txt ]; then cat var/demo-logins.txt; fi
wait
