#!/usr/bin/env bash
# Post-deploy smoke test with curl: POST /events must answer 202 with an idempotencyKey, and
# GET /redrive/preview must answer 200. Needs ApiUrl (stage output). POST /events carries the
# producer's credential: x-api-key when LAB_API_KEY is set, a bearer token when LAB_BEARER_TOKEN is
# set (in_stage.sh sets them). GET /redrive/preview is an operator route (IAM authorization in every
# authMode): curl signs it with SigV4 as the caller (in_stage.sh's role), never with those.
# Run it as `bash pipeline/scripts/smoke.sh`.
set -euo pipefail

: "${ApiUrl:?smoke: ApiUrl (stage output) is not set}"
api="${ApiUrl%/}"
attempts="${SMOKE_ATTEMPTS:-5}"
retry_seconds="${SMOKE_RETRY_SECONDS:-2}"
region="${AWS_REGION:-${AWS_DEFAULT_REGION:-}}"

workdir="$(mktemp -d)"
chmod 700 "$workdir"
trap 'rm -rf "$workdir"' EXIT

# Credentials go to curl through files: on the command line `ps` would show them.
producer="$workdir/producer-headers"
: >"$producer"
if [[ -n "${LAB_API_KEY:-}" ]]; then echo "x-api-key: $LAB_API_KEY" >>"$producer"; fi
if [[ -n "${LAB_BEARER_TOKEN:-}" ]]; then echo "authorization: Bearer $LAB_BEARER_TOKEN" >>"$producer"; fi

# caller_credentials: KEY=VALUE lines of the caller's AWS credentials (environment, profile or the
# role in_stage.sh assumed), which curl signs the operator route with. AWS CLI v2 resolves them
# itself; v1 has no export-credentials, so botocore (v1's own engine) resolves the same chain.
caller_credentials() {
  if aws configure export-credentials --format env-no-export 2>/dev/null; then return 0; fi
  python3 - <<'PY'
import sys

import botocore.session

found = botocore.session.get_session().get_credentials()
if found is None:
    sys.exit("smoke: no AWS credentials to sign the operator route with")
frozen = found.get_frozen_credentials()
print(f"AWS_ACCESS_KEY_ID={frozen.access_key}")
print(f"AWS_SECRET_ACCESS_KEY={frozen.secret_key}")
if frozen.token:
    print(f"AWS_SESSION_TOKEN={frozen.token}")
PY
}

# Written once: the key pair as a curl config file (`user`), the session token as a header.
operator_config="$workdir/operator-curlrc"
operator_headers="$workdir/operator-headers"
prepare_operator() {
  local name value key="" secret="" token=""
  if [[ -z "$region" ]]; then
    echo "smoke: AWS_REGION is not set: the operator route is signed for the stage's region" >&2
    return 1
  fi
  while IFS='=' read -r name value; do
    case "$name" in
      AWS_ACCESS_KEY_ID) key="$value" ;;
      AWS_SECRET_ACCESS_KEY) secret="$value" ;;
      AWS_SESSION_TOKEN) token="$value" ;;
    esac
  done < <(caller_credentials)
  if [[ -z "$key" || -z "$secret" ]]; then
    echo "smoke: no AWS credentials to sign the operator route with" >&2
    return 1
  fi
  printf 'user = "%s:%s"\n' "$key" "$secret" >"$operator_config"
  : >"$operator_headers"
  # Temporary credentials (an assumed role) carry their session token in this header.
  if [[ -n "$token" ]]; then echo "x-amz-security-token: $token" >>"$operator_headers"; fi
}

# request METHOD PATH [BODY]: prints the HTTP status; the body lands in $workdir/body.
request() {
  local method="$1" path="$2" body="${3:-}"
  local args=(--silent --show-error --max-time 30 --output "$workdir/body" --write-out '%{http_code}'
    --request "$method")
  if [[ "$path" == /redrive/* ]]; then
    # SigV4 for API Gateway (service execute-api) in the stage's region: IAM authorization.
    args+=(--aws-sigv4 "aws:amz:$region:execute-api" --config "$operator_config" --header @"$operator_headers")
  else
    args+=(--header @"$producer")
  fi
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

prepare_operator
expect 200 GET "/redrive/preview?maxMessages=1"
echo "smoke: PASSED against $api"
