"""A drill's report: JSON for machines, and one self-contained HTML page with an SVG chart.

The chart is written by hand as SVG: a few polylines and rectangles do not justify adding a
plotting library to the pinned dependencies, and the page opens anywhere without network.
"""

from __future__ import annotations

import html
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPORTS_DIR = Path(os.environ.get("LAB_REPORTS_DIR", Path(__file__).resolve().parents[2] / "reports"))
SERIES = (
    ("main", "visible", "#1f77b4", "main queue visible"),
    ("main", "in_flight", "#9ecae1", "main queue in flight"),
    ("dlq", "visible", "#d62728", "DLQ visible"),
    ("quarantine", "visible", "#9467bd", "quarantine visible"),
)
ALARM_COLOURS = {"OK": "#2ca02c", "ALARM": "#d62728", "INSUFFICIENT_DATA": "#bbbbbb"}
WIDTH, CHART_HEIGHT, LEFT, RIGHT, TOP = 960, 260, 60, 20, 20
ALARM_ROW = 16


def write_report(report: dict[str, Any], directory: Path = REPORTS_DIR) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    stem = f"gameday-{report['drill']}-{report['startedAt'].replace(':', '').replace('-', '')}"
    json_path = directory / f"{stem}.json"
    html_path = directory / f"{stem}.html"
    json_path.write_text(json.dumps(report, indent=2, sort_keys=True, default=str), encoding="utf-8")
    html_path.write_text(render_html(report), encoding="utf-8")
    return json_path, html_path


def render_html(report: dict[str, Any]) -> str:
    esc = html.escape
    rows = "".join(
        f"<tr><td>{entry['t']:.1f}s</td><td>{esc(entry['at'])}</td><td>{esc(entry['label'])}</td>"
        f"<td><code>{esc(json.dumps(entry['details'], default=str))}</code></td></tr>"
        for entry in report["timeline"]
    )
    checks = "".join(f"<li>{esc(str(check))}</li>" for check in report.get("assertions", []))
    outcome = report["outcome"]
    colour = "#2ca02c" if outcome == "passed" else "#d62728"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>gameday {esc(report["drill"])}: {esc(outcome)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1000px}}td{{padding:2px 8px;vertical-align:top}}
code{{font-size:85%}}</style></head><body>
<h1>gameday {esc(report["drill"])}: <span style="color:{colour}">{esc(outcome)}</span></h1>
<p>target <b>{esc(report["target"])}</b>, injector {esc(report["injector"])},
started {esc(report["startedAt"])}, {report["elapsedSeconds"]:.0f} s,
{report["events"]} events.{_error_line(report)}</p>
{_dashboard_line(report)}
<h2>Queue depth and alarm state over time</h2>
{render_svg(report)}
<h2>Assertions</h2><ul>{checks}</ul>
<h2>Timeline</h2><table><tr><th>t</th><th>UTC</th><th>step</th><th>details</th></tr>{rows}</table>
</body></html>
"""


def _dashboard_line(report: dict[str, Any]) -> str:
    link = report.get("dashboard")
    if not link:
        return ""
    command = f"<code>{html.escape(link['command'])}</code>"
    if link.get("url"):
        url = html.escape(link["url"], quote=True)
        return f'<p>The stage\'s dashboard over this drill: <a href="{url}">{url}</a> (or {command}).</p>'
    return f"<p>The stage's dashboard over this drill: {command}.</p>"


def _error_line(report: dict[str, Any]) -> str:
    return f"<br><b>error:</b> {html.escape(report['error'])}" if report.get("error") else ""


def render_svg(report: dict[str, Any]) -> str:
    """Depth lines over time, one band per alarm coloured by state, and the timeline as markers."""
    samples = report["samples"]
    alarm_names = sorted({name for s in samples for name in s["alarms"]})
    height = TOP + CHART_HEIGHT + 30 + ALARM_ROW * len(alarm_names) + 40
    span = max([report["elapsedSeconds"], *(s["t"] for s in samples), 1.0])
    peak = max([1, *(s["queues"].get(q, {}).get(m, 0) for s in samples for q, m, _, _ in SERIES)])
    plot_w = WIDTH - LEFT - RIGHT
    axes = _Axes(span=span, peak=peak, plot_w=plot_w)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" font-size="11">',
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{CHART_HEIGHT}" fill="none" stroke="#999"/>',
        f'<text x="{LEFT - 6}" y="{TOP + 4}" text-anchor="end">{peak}</text>',
        f'<text x="{LEFT - 6}" y="{TOP + CHART_HEIGHT}" text-anchor="end">0</text>',
        f'<text x="{LEFT + plot_w}" y="{TOP + CHART_HEIGHT + 14}" text-anchor="end">{span:.0f} s</text>',
        *_depth_lines(samples, axes),
        *_timeline_markers(report["timeline"], axes),
        *_alarm_bands(samples, alarm_names, axes),
        "</svg>",
    ]
    return "\n".join(parts)


@dataclass(frozen=True)
class _Axes:
    """Seconds since the drill's start -> x, a queue depth -> y."""

    span: float
    peak: float
    plot_w: float

    def x(self, t: float) -> float:
        return LEFT + self.plot_w * t / self.span

    def y(self, value: float) -> float:
        return TOP + CHART_HEIGHT - CHART_HEIGHT * value / self.peak


def _depth_lines(samples: list[dict[str, Any]], axes: _Axes) -> list[str]:
    parts = []
    for index, (queue, metric, colour, label) in enumerate(SERIES):
        points = [(s["t"], s["queues"][queue][metric]) for s in samples if queue in s["queues"]]
        if not points:
            continue
        path = " ".join(f"{axes.x(t):.1f},{axes.y(v):.1f}" for t, v in points)
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}"/>')
        parts.append(
            f'<text x="{LEFT + 10 + 170 * index}" y="{TOP + 14}" fill="{colour}">{html.escape(label)}</text>'
        )
    return parts


def _timeline_markers(timeline: list[dict[str, Any]], axes: _Axes) -> list[str]:
    return [
        f'<line x1="{axes.x(entry["t"]):.1f}" y1="{TOP}" x2="{axes.x(entry["t"]):.1f}" '
        f'y2="{TOP + CHART_HEIGHT}" stroke="#555" stroke-dasharray="2,3">'
        f"<title>{html.escape(entry['label'])}</title></line>"
        for entry in timeline
    ]


def _alarm_bands(samples: list[dict[str, Any]], alarm_names: list[str], axes: _Axes) -> list[str]:
    parts = []
    band_top = TOP + CHART_HEIGHT + 24
    for row, name in enumerate(alarm_names):
        top = band_top + row * ALARM_ROW
        states = [(s["t"], s["alarms"].get(name)) for s in samples]
        for (t, state), (t_next, _) in zip(states, [*states[1:], (axes.span, None)], strict=True):
            if state is None:
                continue
            width = max(1.0, axes.x(t_next) - axes.x(t))
            fill = ALARM_COLOURS.get(state, "#bbbbbb")
            parts.append(
                f'<rect x="{axes.x(t):.1f}" y="{top}" width="{width:.1f}" height="{ALARM_ROW - 3}" '
                f'fill="{fill}"><title>{html.escape(name)}: {state}</title></rect>'
            )
        parts.append(f'<text x="{LEFT + 4}" y="{top + 10}">{html.escape(name)}</text>')
    return parts
