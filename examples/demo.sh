#!/usr/bin/env bash
# Starts the UIG demo: builds the workspace, starts uig-mock (AVINFO, Kontur, KIAS, IMPACT) on
# 127.0.0.1:9090 and the gateway on 127.0.0.1:8080 with embedded SQLite, creates the demo client,
# sends first signed calls and shows a Kontur document arriving. Ctrl-C stops both. Data lives in
# demo-data/ at the repository root.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --workspace --bins --lib
mkdir -p demo-data
[ -f demo-data/master.key ] || ./target/debug/uig keygen > demo-data/master.key

./target/debug/uig-mock --listen 127.0.0.1:9090 &
mock_pid=$!
trap 'kill $mock_pid ${gateway_pid:-} 2>/dev/null || true' EXIT INT TERM

config=examples/uig.toml
if ! ./target/debug/uig client list --config "$config" | grep -q ' demo '; then
  ./target/debug/uig client add demo --config "$config" --allow '*' --callback-host 127.0.0.1:9090 \
    --token tok-demo --secret secret-demo
fi

./target/debug/uig serve --config "$config" &
gateway_pid=$!
for _ in $(seq 1 50); do
  curl -sf http://127.0.0.1:8080/health/ready >/dev/null 2>&1 && break
  sleep 0.2
done

echo
echo "== sync lookup of a vehicle through the AVINFO plugin"
./target/debug/uig call --url http://127.0.0.1:8080 --token tok-demo --secret secret-demo \
  POST /sync/message/send recipient=avinfo entity=vehicle 'message={"vin":"XTA21099043765432"}'
echo
echo "== async send with a callback to the mock's callback sink"
./target/debug/uig call --url http://127.0.0.1:8080 --token tok-demo --secret secret-demo \
  POST /async/message/send recipient=avinfo entity=vehicle 'message={"plate":"А123ВС77"}' \
  callback=http://127.0.0.1:9090/_mock/callbacks
sleep 2
echo
echo "== callbacks received by the mock"
curl -s http://127.0.0.1:9090/_mock/callbacks
echo
echo
echo "== a Kontur document arrives in the insurer's box; the gateway polls it within 5 s"
curl -s -X POST http://127.0.0.1:9090/_mock/kontur/inbox -H 'content-type: application/json' \
  -d '{"mediId": "6f1c0b7e-3d2a-4c59-9a41-2b8e5d7f0a13", "documentType": "Invoice", "text": "Счёт на оплату"}'
echo
sleep 7
echo
echo "== new messages of the demo client, newest first: the KIAS notification, the Kontur document (received), the sends above"
./target/debug/uig call --url http://127.0.0.1:8080 --token tok-demo --secret secret-demo \
  GET /sync/message/list-new per_page=10 order=desc
echo
echo "== scheduled jobs"
./target/debug/uig jobs --config "$config"
echo
echo "The gateway runs on http://127.0.0.1:8080 (token tok-demo, secret secret-demo). Ctrl-C stops it."
wait $gateway_pid
