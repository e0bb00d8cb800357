"""`lab`: the operator CLI of the ingestion lab (local cloud or a deployed stage).

Exit status: 0 pass, 1 a check failed, 2 the command could not run (usage, target), 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from datetime import datetime

from botocore.exceptions import BotoCoreError, ClientError

from functions.common.names import NO_ERROR_TYPE, ErrorType, FailureMode
from lab.commands import (
    ALL_DRILLS,
    EXIT_FAIL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    Output,
    cmd_dashboard,
    cmd_down,
    cmd_env,
    cmd_failure_mode,
    cmd_gameday,
    cmd_redrive,
    cmd_send,
    cmd_smoke,
    cmd_status,
    cmd_up,
    cmd_verify,
)
from lab.gamedays.drills import DRILLS
from lab.gamedays.injectors import INJECTORS
from lab.localcloud.dashboard.timerange import CHOICES
from lab.rehearsal.commands import HANDLED_ERRORS as PIPELINE_ERRORS
from lab.rehearsal.commands import add_pipeline_commands
from stage_client.api import ApiError
from stage_client.failure_mode import DEFAULT_TTL_SECONDS, FailureModeError
from stage_client.redrive import RedriveError
from stage_client.send import SendError
from stage_client.target import TargetError

Handler = Callable[[argparse.Namespace, Output], int]


def build_parser() -> argparse.ArgumentParser:
    # --target/--json are accepted before or after the command; the sub-level copies default to
    # SUPPRESS so they never overwrite a value given at the top level.
    top = _common_options(suppress=False)
    common = _common_options(suppress=True)
    parser = argparse.ArgumentParser(prog="lab", description=__doc__, parents=[top])
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")

    def add(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text, parents=[common])
        sub.set_defaults(handler=handler)
        return sub

    up = add("up", cmd_up, "start the local cloud and deploy the local stage (reuses a running one)")
    up.add_argument("--sample-events", type=int, default=0, help="send this many sample events once up")
    add("down", cmd_down, "stop the local cloud")
    add("env", cmd_env, "print the target as export lines (for curl, the AWS CLI, Locust, --target env)")

    send = add(
        "send", cmd_send, "send sample events through POST /events; prints idempotencyKey and messageId"
    )
    send.add_argument("--count", type=_positive, default=1)
    group = send.add_mutually_exclusive_group()
    group.add_argument("--duplicate-of", metavar="RUN_ID", help="re-send the payloads of an earlier run")
    group.add_argument("--payload", help="send this JSON body instead of generated samples")

    _add_failure_mode(add, common)
    _add_redrive(add, common)
    _add_checks(add)
    add_pipeline_commands(commands, common)
    _add_dashboard(add)
    return parser


AddCommand = Callable[[str, Handler, str], argparse.ArgumentParser]


def _add_failure_mode(add: AddCommand, common: argparse.ArgumentParser) -> None:
    mode = add("failure-mode", cmd_failure_mode, "get, set (with an expiry) or reset /ingestion/failure_mode")
    mode_actions = mode.add_subparsers(dest="action", required=True, metavar="action")
    get = mode_actions.add_parser("get", help="show the stored and the effective mode", parents=[common])
    get.set_defaults(handler=cmd_failure_mode)
    set_ = mode_actions.add_parser("set", help="inject a mode for --ttl seconds", parents=[common])
    set_.add_argument("mode", choices=[m.value for m in FailureMode])
    set_.add_argument(
        "--ttl", type=_positive, default=DEFAULT_TTL_SECONDS, help="seconds (default %(default)s)"
    )
    set_.set_defaults(handler=cmd_failure_mode)
    reset = mode_actions.add_parser("reset", help="back to none", parents=[common])
    reset.add_argument("--via-function", action="store_true", help="invoke the stage's reset function")
    reset.set_defaults(handler=cmd_failure_mode)


def _add_redrive(add: AddCommand, common: argparse.ArgumentParser) -> None:
    rd = add("redrive", cmd_redrive, "preview, start, follow or cancel a DLQ redrive (through the API)")
    rd_actions = rd.add_subparsers(dest="action", required=True, metavar="action")
    preview = rd_actions.add_parser(
        "preview", help="sample the DLQ without removing anything", parents=[common]
    )
    preview.add_argument("--max-messages", type=_positive, default=10)
    preview.add_argument("--error-type", type=_error_types, help=ERROR_TYPE_HELP)
    preview.add_argument("--min-age", type=int, metavar="SECONDS")
    start = rd_actions.add_parser("start", help="start a redrive job", parents=[common])
    start.add_argument("--max-messages", type=_positive, default=100)
    start.add_argument("--error-type", type=_error_types, help=ERROR_TYPE_HELP)
    start.add_argument("--min-age", type=int, metavar="SECONDS")
    start.add_argument("--jitter", type=int, default=5, metavar="SECONDS", help="per-message delay 0..900")
    start.add_argument("--wait", action="store_true", help="follow the job until it ends")
    start.add_argument("--timeout", type=float, default=600.0)
    for action in ("status", "cancel"):
        sub = rd_actions.add_parser(action, help=f"{action} a redrive job", parents=[common])
        sub.add_argument("job_id")
    for sub in rd_actions.choices.values():
        sub.set_defaults(handler=cmd_redrive)


def _add_checks(add: AddCommand) -> None:
    add("status", cmd_status, "queue depths and ages, alarm states, records by status, failure mode")
    smoke = add("smoke", cmd_smoke, "POST /events -> 202 -> SUCCEEDED; GET /redrive/preview -> 200")
    smoke.add_argument("--timeout", type=float, default=60.0)

    verify = add("verify", cmd_verify, "invariants: every key SUCCEEDED once, success events == unique keys")
    source = verify.add_mutually_exclusive_group(required=True)
    source.add_argument("--run-id", help="a run recorded by `lab send` or a gameday")
    source.add_argument("--keys-file", help="idempotency keys, one per line")
    verify.add_argument("--timeout", type=float, default=120.0)
    verify.add_argument("--count-events", action="store_true", help="count IngestionSuccess events too")

    gameday = add("gameday", cmd_gameday, "run an automated drill; always restores failure_mode none")
    gameday.add_argument(
        "name", choices=[*DRILLS, ALL_DRILLS], help=f"a drill, or {ALL_DRILLS} (one after another)"
    )
    gameday.add_argument("--events", type=_positive, help="events to send (default per drill)")
    gameday.add_argument("--timeout", type=float, help="seconds for the whole drill (default per drill)")
    gameday.add_argument("--injector", choices=list(INJECTORS), default="ssm", help="fis: AWS only")
    gameday.add_argument("--report-dir", help="where to write the JSON and HTML report (default reports/)")


def _add_dashboard(add: AddCommand) -> None:
    dashboard = add(
        "dashboard",
        cmd_dashboard,
        "the stage's own CloudWatch dashboard: local, start its page on 127.0.0.1 and print the URL; "
        "a stage on AWS, print its console URL",
    )
    window = dashboard.add_mutually_exclusive_group()
    window.add_argument(
        "--range", choices=list(CHOICES), default="15m", help="the last ... (default %(default)s)"
    )
    window.add_argument("--start", type=_instant, help="a fixed window's start (ISO 8601, with --end)")
    dashboard.add_argument("--end", type=_instant, help="a fixed window's end (ISO 8601)")
    dashboard.add_argument("--port", type=_positive, help="local page port (default: a free one)")
    dashboard.add_argument("--stop", action="store_true", help="stop the local page's server")


def _instant(text: str) -> str:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 time such as 2026-11-02T10:00:00Z"
        ) from None
    return text


def _common_options(*, suppress: bool) -> argparse.ArgumentParser:
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument(
        "--target",
        default=argparse.SUPPRESS if suppress else None,
        help="local (default, or $LAB_TARGET), env (outputs from environment variables) or stage:<envName>",
    )
    options.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS if suppress else False, help="JSON on stdout"
    )
    return options


ERROR_TYPES = (*(error.value for error in ErrorType), NO_ERROR_TYPE)
ERROR_TYPE_HELP = (
    f"one or more comma-separated error types ({', '.join(ERROR_TYPES)}); {NO_ERROR_TYPE!r} selects "
    "messages whose key has no recorded error type, e.g. every message a killed batch returned"
)


def _error_types(value: str) -> str:
    """The redrive filter as the API takes it (names.ErrorType values or "none", comma-separated)."""
    chosen = [part.strip() for part in value.split(",") if part.strip()]
    unknown = [part for part in chosen if part not in ERROR_TYPES]
    if not chosen or unknown:
        raise argparse.ArgumentTypeError(f"{value!r}: choose from {', '.join(ERROR_TYPES)} (comma-separated)")
    return ",".join(chosen)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    out = Output(args.json)
    try:
        code: int = args.handler(args, out)
    except KeyboardInterrupt:
        out.progress("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `lab status | head`: the reader left; say nothing more (Python's documented recipe).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except (TargetError, FailureModeError, *PIPELINE_ERRORS) as error:
        out.result({"ok": False, "error": str(error)}, f"error: {error}")
        return EXIT_USAGE
    except (SendError, RedriveError, ApiError, ClientError, BotoCoreError) as error:
        out.result({"ok": False, "error": str(error)}, f"FAIL: {error}")
        return EXIT_FAIL
    return code


if __name__ == "__main__":
    sys.exit(main())
