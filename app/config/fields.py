"""The field types of the configuration models: a type, its bounds or pattern, and its rule in words
(which the errors and the generated tables both show)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import AfterValidator, Field, StrictInt, StrictStr

# CloudWatch Logs accepts only these retention periods (days): CloudWatch Logs API Reference,
# PutRetentionPolicy, retentionInDays.
LOG_RETENTION_DAYS: tuple[int, ...] = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
)  # fmt: skip


def bounded(default: float | None, low: float, high: float, description: str) -> Any:
    """A number field within [low, high], one line per key: an int field takes integers only, a float
    field integers or floats; a string or a boolean is refused either way."""
    return Field(default, ge=low, le=high, strict=True, description=description)


def flag(default: bool, description: str) -> Any:
    """A true/false field (a string such as "yes" is refused)."""
    return Field(default, strict=True, description=description)


def matching(pattern: str, rule: str) -> AfterValidator:
    """A string check whose error names the rule in words (not the regular expression)."""
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.match(value):
            raise ValueError(f"{rule}, got {value!r}")
        return value

    return rule_check(check, rule)


def rule_check(check: Callable[[Any], Any], rule: str) -> AfterValidator:
    """A field check whose rule (in words, as the error says it) the configuration tables show."""
    check.__config_rule__ = rule  # type: ignore[attr-defined]
    return AfterValidator(check)


ACCOUNT_ID = r"^\d{12}$"
AWS_REGION = r"^[a-z]{2}(-[a-z]+)+-\d$"
AccountId = Annotated[StrictStr, matching(ACCOUNT_ID, "must be a 12-digit AWS account id")]
AwsRegion = Annotated[StrictStr, matching(AWS_REGION, "must be an AWS region such as us-east-1")]
HttpsUrl = Annotated[StrictStr, matching(r"^https://\S+$", "must be an https:// URL")]


def _in_log_retentions(days: int) -> int:
    if days not in LOG_RETENTION_DAYS:
        raise ValueError(
            f"must be a CloudWatch Logs retention ({', '.join(map(str, LOG_RETENTION_DAYS))}), got {days}"
        )
    return days


def _not_reserved_alias(alias: str) -> str:
    if alias.startswith("alias/aws/"):
        raise ValueError(
            f"must look like alias/<name> and not use the reserved alias/aws/ prefix, got {alias!r}"
        )
    return alias


EnvName = Annotated[StrictStr, matching(r"^[a-z][a-z0-9-]{1,15}$", "must match ^[a-z][a-z0-9-]{1,15}$")]
Email = Annotated[StrictStr, matching(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", "must be an email address")]
KmsAlias = Annotated[
    StrictStr,
    matching(r"^alias/[a-zA-Z0-9/_-]{1,240}$", "must look like alias/<name>"),
    rule_check(_not_reserved_alias, "not under the reserved alias/aws/"),
]
CorsOrigin = Annotated[
    StrictStr,
    matching(
        r"^(https://[a-z0-9.-]+(:\d+)?|http://(localhost|127\.0\.0\.1)(:\d+)?)$",
        "must be https://host[:port], or http://localhost / http://127.0.0.1 for local work ('*' is refused)",
    ),
]


LogRetentionDays = Annotated[
    StrictInt, rule_check(_in_log_retentions, "a CloudWatch Logs retention (1, 3, 5, 7, 14, 30, 60, 90, ...)")
]
NonEmpty = Annotated[StrictStr, Field(min_length=1)]
