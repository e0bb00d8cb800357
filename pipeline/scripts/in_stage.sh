#!/usr/bin/env bash
# Runs one post-deploy check inside a deployed stage: as the stage's checks role, in the stage's
# region, with the API credential the stage's authMode needs.
# Usage: bash pipeline/scripts/in_stage.sh COMMAND [ARG...] (a script COMMAND runs as `bash SCRIPT`).
#
# Environment (set by the pipeline step; see pipeline/steps.py):
#   STAGE_ROLE_ARN      role to assume (unset: keep the current credentials, e.g. the local cloud)
#   STAGE_REGION        region of the stage (default: AWS_REGION)
#   AuthMode            stage output: none | apiKey | jwt
#   API_KEY_SECRET_ID   authMode apiKey: the stage's API key secret (read as the stage role)
#   JWT_SECRET_ID       authMode jwt: a secret of the pipeline account holding a bearer token
# The command gets LAB_API_KEY or LAB_BEARER_TOKEN (never on a command line: `ps` would show it).
set -euo pipefail

if [[ $# -eq 0 ]]; then
  echo "usage: $0 COMMAND [ARG...]" >&2
  exit 2
fi

# In CodeBuild, AWS_REGION is the pipeline's region; the stage may live in another one.
pipeline_region="${AWS_REGION:-${AWS_DEFAULT_REGION:-}}"
region="${STAGE_REGION:-$pipeline_region}"
if [[ -z "$region" ]]; then
  echo "in_stage: STAGE_REGION (or AWS_REGION) is not set" >&2
  exit 2
fi
export AWS_REGION="$region" AWS_DEFAULT_REGION="$region"

workdir="$(mktemp -d)"
chmod 700 "$workdir"
trap 'rm -rf "$workdir"' EXIT

auth_mode="${AuthMode:-none}"

# The JWT secret lives in the pipeline account: read it before switching to the stage role.
if [[ "$auth_mode" == "jwt" ]]; then
  : "${JWT_SECRET_ID:?in_stage: authMode jwt needs JWT_SECRET_ID (pipeline context jwtTokenSecretName)}"
  LAB_BEARER_TOKEN="$(aws secretsmanager get-secret-value --region "${pipeline_region:-$region}" \
    --secret-id "$JWT_SECRET_ID" --query SecretString --output text)"
  export LAB_BEARER_TOKEN
fi

if [[ -n "${STAGE_ROLE_ARN:-}" ]]; then
  # A profile instead of exporting `aws sts assume-role` output: the SDKs and the CLI re-assume the
  # role when the session expires, so a long load test or gameday never runs on dead credentials.
  config="$workdir/config"
  # One session name per run: the AWS CLI caches an assumed role's credentials under
  # ~/.aws/cli/cache keyed by role and session name, not by the source credentials, so a name that
  # repeats (build numbers restart with each local cloud) would reuse keys another engine issued
  # and fail with InvalidClientTokenId until they expire. A CodeBuild container starts empty anyway.
  session="pipeline-checks-${CODEBUILD_BUILD_NUMBER:-local}-$(date +%s)-$$"
  {
    echo "[profile stage-checks]"
    echo "role_arn = $STAGE_ROLE_ARN"
    echo "role_session_name = $session"
    echo "region = $region"
  } >"$config"
  if [[ -n "${AWS_CONTAINER_CREDENTIALS_RELATIVE_URI:-}${AWS_CONTAINER_CREDENTIALS_FULL_URI:-}" ]]; then
    # CodeBuild: the step's own role comes from the container credentials endpoint.
    echo "credential_source = EcsContainer" >>"$config"
  elif [[ -n "${AWS_ACCESS_KEY_ID:-}" ]]; then
    # Key-based callers (a workstation, the local cloud): their keys become the source profile,
    # and leave the environment, where they would take precedence over the assumed role.
    {
      echo "[stage-checks-source]"
      echo "aws_access_key_id = $AWS_ACCESS_KEY_ID"
      echo "aws_secret_access_key = ${AWS_SECRET_ACCESS_KEY:?in_stage: AWS_SECRET_ACCESS_KEY is not set}"
      if [[ -n "${AWS_SESSION_TOKEN:-}" ]]; then echo "aws_session_token = $AWS_SESSION_TOKEN"; fi
    } >"$workdir/credentials"
    echo "source_profile = stage-checks-source" >>"$config"
    export AWS_SHARED_CREDENTIALS_FILE="$workdir/credentials"
    unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN
  else
    echo "in_stage: STAGE_ROLE_ARN is set but no source credentials were found" >&2
    exit 2
  fi
  export AWS_CONFIG_FILE="$config" AWS_PROFILE="stage-checks"
  unset AWS_DEFAULT_PROFILE
  # Fail here, with the role in the message, rather than inside the check with an AccessDenied.
  if ! caller="$(aws sts get-caller-identity --query Arn --output text)"; then
    echo "in_stage: cannot assume $STAGE_ROLE_ARN (is the stage deployed and the pipeline account trusted?)" >&2
    exit 1
  fi
  echo "in_stage: running as $caller in $region"
fi

if [[ "$auth_mode" == "apiKey" ]]; then
  : "${API_KEY_SECRET_ID:?in_stage: authMode apiKey needs API_KEY_SECRET_ID}"
  LAB_API_KEY="$(aws secretsmanager get-secret-value --secret-id "$API_KEY_SECRET_ID" \
    --query SecretString --output text)"
  export LAB_API_KEY
fi

"$@"
