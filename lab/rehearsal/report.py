"""The record of a run: reports/pipeline-<id>.json, and an HTML page showing it as the CodePipeline
console does (stages, actions, state, duration) on a timeline, with each action's log and what its
build produced (the gameday's and the load test's reports) copied into reports/pipeline-<id>/.

The timeline is SVG written by hand, like the gameday reports (lab/gamedays/report.py): a few
rectangles do not justify a plotting library, and the page opens anywhere without network.
"""

from __future__ import annotations

import html
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.localcloud.codepipeline.execution import ActionRecord, ExecutionRecord, iso, now

COLOURS = {
    "Succeeded": "#2ca02c",
    "Failed": "#d62728",
    "InProgress": "#1f77b4",
    "Waiting": "#ff9f1c",
    "Stopped": "#7f7f7f",
    "Abandoned": "#7f7f7f",
    "Superseded": "#9e9e9e",
}
IDLE = "#dddddd"
WIDTH, LEFT, RIGHT, ROW, TOP = 1100, 330, 30, 20, 30


@dataclass(frozen=True)
class RunReport:
    json_path: Path
    html_path: Path


def _copy(source: Path, target: Path) -> str | None:
    if not source.is_file():
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target)
    return str(target)


def _action_entry(action: ActionRecord, pipeline_root: Path, folder: Path, reports: Path) -> dict[str, Any]:
    slug = f"{action.stage}.{action.name}"
    log = _copy(pipeline_root / action.log, folder / f"{slug}.log") if action.log else None
    links = []
    for link in action.links:
        copied = _copy(pipeline_root / link.path, folder / slug / link.label)
        if copied:
            links.append({"label": link.label, "path": str(Path(copied).relative_to(reports))})
    return {
        "stage": action.stage,
        "name": action.name,
        "category": action.category,
        "provider": action.provider,
        "runOrder": action.run_order,
        "status": action.status,
        "startedAt": iso(action.started_at),
        "endedAt": iso(action.ended_at),
        "seconds": round(action.seconds, 1) if action.seconds is not None else None,
        "offsets": [action.started_at, action.ended_at],
        "summary": action.summary,
        "error": action.error,
        "log": str(Path(log).relative_to(reports)) if log else None,
        "links": links,
    }


def run_document(record: ExecutionRecord, pipeline_root: Path, reports: Path) -> dict[str, Any]:
    """The run as JSON; logs and build reports copied next to it (paths relative to reports/)."""
    folder = reports / f"pipeline-{record.id}"
    return {
        "id": record.id,
        "pipeline": record.pipeline,
        "pipelineVersion": record.pipeline_version,
        "status": record.status,
        "statusReason": record.status_reason,
        "trigger": record.trigger,
        "revision": record.revision,
        "startedAt": iso(record.started_at),
        "endedAt": iso(record.ended_at),
        "seconds": round(record.seconds, 1),
        "start": record.started_at,
        "stages": [
            {
                "name": s.name,
                "status": s.status,
                "startedAt": iso(s.started_at),
                "endedAt": iso(s.ended_at),
                "seconds": round(s.ended_at - s.started_at, 1) if s.started_at and s.ended_at else None,
                "waitedSeconds": s.waited_s,
            }
            for s in record.stages
        ],
        "actions": [_action_entry(a, pipeline_root, folder, reports) for a in record.actions],
    }


def write_run_report(record: ExecutionRecord, pipeline_root: Path, reports: Path) -> RunReport:
    reports.mkdir(parents=True, exist_ok=True)
    document = run_document(record, pipeline_root, reports)
    json_path = reports / f"pipeline-{record.id}.json"
    html_path = reports / f"pipeline-{record.id}.html"
    json_path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    html_path.write_text(render_html(document), encoding="utf-8")
    return RunReport(json_path, html_path)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest:02d}s" if minutes else f"{rest}s"


def render_timeline(document: dict[str, Any]) -> str:
    """One row per action, grouped under its stage; a bar from its start to its end (or now)."""
    start = float(document["start"])
    end = max([start + 1.0, start + float(document["seconds"])])
    span = end - start
    plot_w = WIDTH - LEFT - RIGHT
    rows: list[str] = []
    y = TOP
    for stage in document["stages"]:
        colour = COLOURS.get(stage["status"], IDLE)
        rows.append(
            f'<text x="8" y="{y + 14}" font-weight="bold" fill="{colour}">{html.escape(stage["name"])}</text>'
        )
        rows.append(_right_text(y, html.escape(stage["status"]), colour))
        y += ROW
        for action in (a for a in document["actions"] if a["stage"] == stage["name"]):
            rows.append(_action_row(action, y, start, span, plot_w))
            y += ROW
    ticks = []
    for index in range(7):
        x = LEFT + plot_w * index / 6
        ticks.append(f'<line x1="{x:.1f}" y1="{TOP - 6}" x2="{x:.1f}" y2="{y}" stroke="#eee"/>')
        ticks.append(
            f'<text x="{x:.1f}" y="{TOP - 10}" text-anchor="middle">{_duration(span * index / 6)}</text>'
        )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{y + 10}" font-size="12" '
        f'font-family="sans-serif">{"".join(ticks)}{"".join(rows)}</svg>'
    )


def _action_row(action: dict[str, Any], y: int, start: float, span: float, plot_w: float) -> str:
    began, ended = action["offsets"]
    label = f'<text x="24" y="{y + 14}">{html.escape(action["name"])}</text>'
    if not began:
        return label + _right_text(y, html.escape(action["status"]), "#999")
    x = LEFT + plot_w * (began - start) / span
    width = max(2.0, plot_w * ((ended or now()) - began) / span)
    colour = COLOURS.get(action["status"], IDLE)
    title = html.escape(
        f"{action['status']} {_duration(action['seconds'])} {action['summary'] or action['error']}"
    )
    bar = f'<rect x="{x:.1f}" y="{y + 3}" width="{width:.1f}" height="{ROW - 6}" fill="{colour}" rx="2">'
    return (
        label + _right_text(y, _duration(action["seconds"]), "#333") + f"{bar}<title>{title}</title></rect>"
    )


def _right_text(y: int, text: str, colour: str) -> str:
    """Text right-aligned against the timeline's left edge (durations and states)."""
    return f'<text x="{LEFT - 8}" y="{y + 14}" text-anchor="end" fill="{colour}">{text}</text>'


def _table(document: dict[str, Any]) -> str:
    esc = html.escape
    rows = []
    for action in document["actions"]:
        links = []
        if action["log"]:
            links.append(f'<a href="{esc(action["log"])}">log</a>')
        links.extend(f'<a href="{esc(link["path"])}">{esc(link["label"])}</a>' for link in action["links"])
        colour = COLOURS.get(action["status"], "#999")
        detail = esc(action["error"] or action["summary"] or "")
        rows.append(
            f"<tr><td>{esc(action['stage'])}</td><td>{esc(action['name'])}</td>"
            f'<td style="color:{colour}">{esc(action["status"])}</td><td>{_duration(action["seconds"])}</td>'
            f"<td>{detail}</td><td>{' '.join(links)}</td></tr>"
        )
    return (
        "<table><tr><th>stage</th><th>action</th><th>state</th><th>duration</th><th>result</th>"
        f"<th>log and reports</th></tr>{''.join(rows)}</table>"
    )


def render_html(document: dict[str, Any]) -> str:
    esc = html.escape
    status = document["status"]
    revision = document["revision"]
    colour = COLOURS.get(status, "#999")
    reason = f"<br>{esc(document['statusReason'])}" if document["statusReason"] else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{esc(document["pipeline"])} {esc(document["id"])}: {esc(status)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1150px}}
td,th{{padding:3px 8px;vertical-align:top;text-align:left}}
table{{border-collapse:collapse}}tr:nth-child(even){{background:#f6f6f6}}</style></head><body>
<h1>{esc(document["pipeline"])}: execution {esc(document["id"])}
<span style="color:{colour}">{esc(status)}</span></h1>
<p>commit <code>{esc(revision.get("commit", "")[:12])}</code> on {esc(revision.get("branch", ""))}:
{esc(revision.get("message", ""))}<br>trigger {esc(document["trigger"].get("kind", ""))}:
{esc(document["trigger"].get("detail", ""))}<br>started {esc(document["startedAt"] or "")},
{_duration(document["seconds"])} (pipeline version {document["pipelineVersion"]}){reason}</p>
<h2>Timeline</h2>
{render_timeline(document)}
<h2>Actions</h2>
{_table(document)}
</body></html>
"""
