#!/usr/bin/env bash
# Checks a running `leadsignal serve` against its own OpenAPI document with
# schemathesis (pip install schemathesis): every documented operation is
# called with generated valid input, and every answer must have a documented
# status, content type and schema, and never be a server error.
# The sandbox stands in for Meta. Usage: scripts/openapi_check.sh [binary]
set -euo pipefail
bin=${1:-target/release/leadsignal}
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$dir"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
sb_port=$(free_port)
port=$(free_port)
"$bin" sandbox --listen "127.0.0.1:$sb_port" --dataset 2780431635496611 --token st-token >"$dir/sandbox.log" 2>&1 &
cat >"$dir/leadsignal.toml" <<TOML
[meta]
dataset_id = "2780431635496611"
access_token = "st-token"
graph_url = "http://127.0.0.1:$sb_port"
[crm]
name = "HubSpot"
[normalize]
default_country = "US"
[store]
url = "sqlite://$dir/outbox.db"
[server]
listen = "127.0.0.1:$port"
api_token = "st-api-token"
webhook_verify_token = "st-verify"
flush_interval_ms = 200
TOML
(cd "$dir" && exec "$OLDPWD/$bin" serve) >"$dir/serve.log" 2>&1 &
for _ in $(seq 100); do
  python3 -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$port/healthz', timeout=1)" 2>/dev/null && break
  sleep 0.1
done
st run "http://127.0.0.1:$port/openapi.json" \
  --url "http://127.0.0.1:$port" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --mode positive \
  -H "Authorization: Bearer st-api-token" \
  --max-examples 60 \
  --generation-deterministic
