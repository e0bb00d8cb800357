"""A target as environment variables: what `lab --target env` and pipeline steps read back."""

from __future__ import annotations

import shlex

from functions.common.names import Output
from stage_client.target import API_KEY_ENV, Target


def target_environment(target: Target) -> dict[str, str]:
    """Outputs named like the stage outputs, plus the endpoint, region and API key when set."""
    env = {key.value: target.outputs[key.value] for key in Output if key.value in target.outputs}
    env[Output.API_URL.value] = target.api_url
    env["AWS_REGION"] = env["AWS_DEFAULT_REGION"] = target.region
    if target.endpoint_url:
        # The local cloud accepts any credentials; a deployed stage uses the caller's own chain.
        env.update(AWS_ENDPOINT_URL=target.endpoint_url, AWS_ACCESS_KEY_ID="test")
        env["AWS_SECRET_ACCESS_KEY"] = "test"  # noqa: S105 - the local engine's public test credentials
    if target.api_key:
        env[API_KEY_ENV] = target.api_key
    return env


def export_lines(env: dict[str, str]) -> str:
    return "\n".join(f"export {name}={shlex.quote(value)}" for name, value in sorted(env.items()))
