#!/usr/bin/env bash
# Post-deploy smoke test with curl: POST /events must answer 202 with an idempotencyKey, and
# GET /redrive/preview must answer 200. Needs ApiUrl (stage output); sends x-api-key when
# LAB_API_KEY is set and a bearer token when LAB_BEARER_TOKEN is set (in_stage.sh sets them).
set -euo pipefail

: "${ApiUrl:?smoke: ApiUrl (stage output) is not set}"
api="${ApiUrl%/}"
attempts="${SMOKE_ATTEMPTS:-5}"
retry_seconds="${SMOKE_RETRY_SECONDS:-2}"

workdir="$(mktemp -d)"
chmod 700 "$workdir"
trap 'rm -rf "$workdir"' EXIT

# Credentials go to curl through a header file: on the command line `ps` would show them.
headers="$workdir/headers"
: >"$headers"
if [[ -n "${LAB_API_KEY:-}" ]]; then echo "x-api-key: $LAB_API_KEY" >>"$headers"; fi
if [[ -n "${LAB_BEARER_TOKEN:-}" ]]; then echo "authorization: Bearer $LAB_BEARER_TOKEN" >>"$headers"; fi

# request METHOD PATH [BODY]: prints the HTTP status; the body lands in $workdir/body.
request() {
  local method="$1" path="$2" body="${3:-}"
  local args=(--silent --show-error --max-time 30 --output "$workdir/body" --write-out '%{http_code}'
    --request "$method" --header @"$headers")
  if [[ -n "$body" ]]; then args+=(--header "content-type: application/json" --data "$body"); fi
  # On a connection failure curl still prints 000 as the status: the caller retries that.
  curl "${args[@]}" "$api$path" || true
}

# A fresh stage can answer 5xx for a few seconds (cold starts, IAM propagation): retry those only.
expect() {
  local want="$1" method="$2" path="$3" body="${4:-}" status attempt
  for ((attempt = 1; attempt <= attempts; attempt++)); do
    status="$(request "$method" "$path" "$body")"
    if [[ "$status" == "$want" ]]; then
      echo "smoke: $method $path -> $status"
      return 0
    fi
    if [[ "$status" != 5* && "$status" != "000" ]]; then break; fi
    if ((attempt < attempts)); then sleep "$((attempt * retry_seconds))"; fi
  done
  echo "smoke: FAILED $method $path -> $status (expected $want): $(head -c 500 "$workdir/body" 2>/dev/null)" >&2
  return 1
}

run_id="smoke-$(date +%s)-$$"
expect 202 POST /events "{\"orderId\":\"$run_id\",\"amount\":42.5,\"source\":\"pipeline-smoke\"}"
key="$(jq -r '.idempotencyKey // empty' "$workdir/body")"
if [[ -z "$key" ]]; then
  echo "smoke: FAILED POST /events answered 202 without an idempotencyKey: $(head -c 500 "$workdir/body")" >&2
  exit 1
fi
echo "smoke: accepted with idempotencyKey $key"

expect 200 GET "/redrive/preview?maxMessages=1"
echo "smoke: PASSED against $api"
