#!/usr/bin/env bash
# Runs schemathesis against a real `uig serve` and `uig-mock` on loopback ports. Every operation of
# engine/openapi.json gets generated requests (examples, coverage, fuzzing and stateful phases),
# signed by hooks.py. No response may be a 5xx, and each must match the documented status codes,
# content types and schemas.
#
# Environment (all optional):
#   UIG_SCHEMATHESIS_MAX_EXAMPLES  generated cases per operation and phase (default 200)
#   UIG_SCHEMATHESIS_TIME_LIMIT    seconds schemathesis may run before it is stopped (default 240)
#   UIG_SCHEMATHESIS_SEED          seed of the generator, to repeat a run (default random, printed)
#   UIG_SCHEMATHESIS_WORKERS       concurrent schemathesis workers (default 1)
#   UIG_SCHEMATHESIS_SCHEMA        document to test instead of the served /openapi.json, such as
#                                  engine/openapi.json while it is edited, without a rebuild
#   UIG_SCHEMATHESIS_EXTRA_OPTIONS more `st run` options, split on spaces, such as
#                                  "--report har --report-dir /tmp/report"
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

max_examples=${UIG_SCHEMATHESIS_MAX_EXAMPLES:-200}
time_limit=${UIG_SCHEMATHESIS_TIME_LIMIT:-240}
# NOTE: with 2 workers, schemathesis 4.32.5 on CPython 3.11.7 failed in the coverage phase with
# "SystemError: AST constructor recursion depth mismatch", raised by ast.parse in Hypothesis
# 6.170.27 (lambda descriptions) while the other worker also parsed. One worker avoids it.
workers=${UIG_SCHEMATHESIS_WORKERS:-1}
target_dir=${CARGO_TARGET_DIR:-$root/target}
venv=$target_dir/schemathesis-venv

# Schemathesis goes into a virtual environment under target/, so the system Python is untouched.
# The venv is rebuilt whenever requirements.txt differs from the one it was built from.
requirements=$root/.ci/schemathesis/requirements.txt
if ! cmp -s "$requirements" "$venv/requirements.txt"; then
  echo "installing $(grep '^schemathesis==' "$requirements") into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
  cp "$requirements" "$venv/requirements.txt"
fi

cargo build --quiet --locked -p uig-engine -p uig-mock -p uig-connector-avinfo -p uig-connector-testkit
bin_dir=$target_dir/debug

work_dir=$(mktemp -d)
mock_pid=
gateway_pid=
stop_servers() {
  local pid
  for pid in "$gateway_pid" "$mock_pid"; do
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  rm -rf "$work_dir"
}
trap stop_servers EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Polls url until it returns 200, or fails after 30 s or when the process exits.
wait_for_http() {
  local url=$1 pid=$2 name=$3 attempt
  for attempt in $(seq 1 300); do
    if python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' "$url" 2>/dev/null; then
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "$name exited before it served $url" >&2
      return 1
    fi
    sleep 0.1
  done
  echo "$name did not serve $url within 30 s" >&2
  return 1
}

mock_port=$(free_port)
mock_url=http://127.0.0.1:$mock_port
"$bin_dir/uig-mock" --listen "127.0.0.1:$mock_port" >"$work_dir/mock.log" 2>&1 &
mock_pid=$!
wait_for_http "$mock_url/_mock/stats" "$mock_pid" uig-mock

gateway_port=$(free_port)
gateway_url=http://127.0.0.1:$gateway_port
config=$work_dir/uig.toml
cat >"$config" <<EOF
listen = "127.0.0.1:$gateway_port"
database_url = "sqlite://$work_dir/uig.db"
plugins_dir = "$bin_dir"
directory_files = ["$root/examples/directories/avinfo.csv"]

[worker]
poll_interval_ms = 100
lease_seconds = 60

[callbacks]
timeout_ms = 2000
max_attempts = 2

[limits]
# Off: schemathesis sends far more requests per second than the default 200.
client_rate_per_second = 0

[connectors.avinfo]
library = "libuig_connector_avinfo.so"
required = true
allowed_urls = ["$mock_url"]
deadline_ms = 5000
max_attempts = 2

[connectors.avinfo.settings]
base_url = "$mock_url"
api_key = "demo-avinfo-key"
cache_ttl_seconds = 3600

[connectors.testkit]
library = "libuig_connector_testkit.so"
allowed_urls = ["$mock_url"]
deadline_ms = 2000
concurrency = 4
max_attempts = 2
EOF

export UIG_MASTER_KEY
UIG_MASTER_KEY=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
# Callbacks may go only to the mock, which receives them at /_mock/callbacks.
client=$("$bin_dir/uig" client add schemathesis --config "$config" --allow '*' --callback-host "127.0.0.1:$mock_port" --json)
export UIG_SCHEMATHESIS_TOKEN UIG_SCHEMATHESIS_SECRET UIG_SCHEMATHESIS_MOCK_URL=$mock_url
UIG_SCHEMATHESIS_TOKEN=$(python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])' <<<"$client")
UIG_SCHEMATHESIS_SECRET=$(python3 -c 'import json, sys; print(json.load(sys.stdin)["secret"])' <<<"$client")

NO_COLOR=1 UIG_LOG=info "$bin_dir/uig" serve --config "$config" >"$work_dir/uig.log" 2>&1 &
gateway_pid=$!
wait_for_http "$gateway_url/health/ready" "$gateway_pid" "uig serve"

schema=${UIG_SCHEMATHESIS_SCHEMA:-$gateway_url/openapi.json}
if [[ -f "$schema" ]]; then
  schema=$(realpath "$schema")
fi
seed_option=()
if [[ -n "${UIG_SCHEMATHESIS_SEED:-}" ]]; then
  seed_option=(--seed "$UIG_SCHEMATHESIS_SEED")
fi

# Schemathesis writes a cache of failing cases to .schemathesis/ in its working directory, so it
# runs in target/ to keep the work tree clean. SIGINT makes it stop and still print its report,
# and the run then counts as failed.
run_dir=$target_dir/schemathesis-run
mkdir -p "$run_dir"
status=0
(cd "$run_dir" && SCHEMATHESIS_HOOKS=$root/.ci/schemathesis/hooks.py timeout --signal=INT --kill-after=30 "$time_limit" \
  "$venv/bin/st" --no-color run "$schema" \
  --url "$gateway_url" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --phases examples,coverage,fuzzing,stateful \
  --max-examples "$max_examples" \
  --workers "$workers" \
  --request-timeout 15 \
  --generation-database none \
  "${seed_option[@]}" ${UIG_SCHEMATHESIS_EXTRA_OPTIONS:-}) || status=$?

if [[ $status -eq 124 || $status -eq 130 ]]; then
  echo "schemathesis did not finish within $time_limit s" >&2
fi

# A panic in the worker or the callback sender never reaches an HTTP response, so the log is read
# too. Testkit panics on purpose for the entity "panic", so its own panics are expected.
panics=$(grep -a "panicked at" "$work_dir/uig.log" | grep -av "panicked at connectors/testkit/" || true)
if [[ -n "$panics" ]]; then
  echo "uig serve panicked during the run:" >&2
  echo "$panics" >&2
  status=1
fi
if [[ $status -ne 0 ]]; then
  echo "---- uig serve log (last 100 lines) ----" >&2
  tail -n 100 "$work_dir/uig.log" >&2
fi
exit "$status"
