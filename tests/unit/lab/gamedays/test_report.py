"""The gameday report page: depth lines, alarm state bands and timeline markers in one SVG."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lab.gamedays.report import ALARM_COLOURS, render_svg, write_report


def report(**overrides: Any) -> dict[str, Any]:
    queues = lambda dlq: {"main": {"visible": 0, "in_flight": 1}, "dlq": {"visible": dlq, "in_flight": 0}}  # noqa: E731
    base: dict[str, Any] = {
        "drill": "poison-pill",
        "target": "local",
        "injector": "ssm",
        "events": 3,
        "startedAt": "2026-11-28T08:00:00+00:00",
        "elapsedSeconds": 30.0,
        "outcome": "passed",
        "error": None,
        "assertions": ["3 poisoned events reached the DLQ"],
        "timeline": [
            {"t": 0.0, "at": "x", "label": "inject", "details": {"mode": "poison_payload"}},
            {"t": 20.0, "at": "y", "label": "fix <now>", "details": {}},
        ],
        "samples": [
            {"t": 0.0, "queues": queues(0), "alarms": {"dlq-depth": "OK"}},
            {"t": 10.0, "queues": queues(3), "alarms": {"dlq-depth": "ALARM"}},
            {"t": 30.0, "queues": queues(0), "alarms": {"dlq-depth": "OK"}},
        ],
    }
    return {**base, **overrides}


def test_svg_draws_depths_alarm_bands_and_markers() -> None:
    svg = render_svg(report())
    assert svg.count("<polyline") == 3  # main visible, main in flight, DLQ visible (no quarantine data)
    assert svg.count(f'fill="{ALARM_COLOURS["ALARM"]}"><title>dlq-depth: ALARM</title>') == 1
    assert svg.count(f'fill="{ALARM_COLOURS["OK"]}"><title>dlq-depth: OK</title>') == 2
    assert svg.count("stroke-dasharray") == 2
    assert "fix &lt;now&gt;" in svg  # labels are escaped


def test_svg_copes_with_no_samples() -> None:
    svg = render_svg(report(samples=[], timeline=[]))
    assert svg.startswith("<svg")
    assert svg.endswith("</svg>")
    assert "<polyline" not in svg


def test_write_report_writes_json_and_a_self_contained_page(tmp_path: Path) -> None:
    json_path, html_path = write_report(report(outcome="failed", error="DLQ never drained"), tmp_path)
    assert json.loads(json_path.read_text())["outcome"] == "failed"
    page = html_path.read_text()
    assert "DLQ never drained" in page
    assert "<script" not in page
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "")
