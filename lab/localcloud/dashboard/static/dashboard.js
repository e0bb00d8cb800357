// The local dashboard page: lays out whatever widgets the server read from GetDashboard, draws metric
// widgets with uPlot and alarm widgets coloured by state, and refreshes every few seconds with one
// request (/api/data). The time range lives in the URL (?start=-PT15M, or ?start=<ISO>&end=<ISO>)
// in the console's own terms, so a drill report can link a window.
"use strict";
(() => {
  const DEFAULT_REFRESH_S = 5;
  const LEGEND_PX = 44;
  // The CloudWatch console's default series colours, in order.
  const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
  const STATE_ORDER = { ALARM: 0, INSUFFICIENT_DATA: 1, OK: 2 };

  const grid = document.getElementById("grid");
  const statusLine = document.getElementById("status");
  const banner = document.getElementById("banner");
  const params = new URLSearchParams(location.search);
  const refreshSeconds = Math.max(1, Number(params.get("refresh")) || DEFAULT_REFRESH_S);

  // Read by people in the console and by the browser test: what the page last showed and what it cost.
  const page = (window.labDashboard = {
    dashboard: null,
    views: [],
    range: { start: params.get("start"), end: params.get("end") },
    refreshes: 0,
    last: null,
    firstDataMs: null,
    error: null,
    // The window of the last refresh, in epoch seconds (the time axis of every graph).
    windowStart: Date.now() / 1e3 - 900,
    windowEnd: Date.now() / 1e3,
  });

  function setBanner(message) {
    banner.hidden = !message;
    banner.textContent = message || "";
    page.error = message || null;
  }

  async function getJson(url) {
    const response = await fetch(url, { cache: "no-store" });
    const body = await response.json();
    if (!response.ok) throw new Error(`${body.error || response.status}: ${body.message || ""}`);
    return body;
  }

  // ---- time range -------------------------------------------------------------------------------
  function currentRange() {
    if (page.range.start) return page.range;
    // The body's own default range if it has a relative one, as the console opens it.
    const body = page.dashboard || {};
    const start = body.start && !body.end && body.start.startsWith("-P") ? body.start : body.defaultRange;
    return { start, end: null };
  }

  function chooseRange(start, end) {
    page.range = { start, end };
    const query = new URLSearchParams(location.search);
    query.set("start", start);
    if (end) query.set("end", end); else query.delete("end");
    history.replaceState(null, "", `?${query}`);
    drawRangeButtons();
    refreshNow();
  }

  function drawRangeButtons() {
    const nav = document.getElementById("ranges");
    nav.replaceChildren();
    const range = currentRange();
    const choices = Object.entries((page.dashboard && page.dashboard.ranges) || {});
    for (const [label, value] of choices) {
      const button = document.createElement("button");
      button.textContent = label;
      button.dataset.range = value;
      button.setAttribute("aria-pressed", String(!range.end && range.start === value));
      button.addEventListener("click", () => chooseRange(value, null));
      nav.append(button);
    }
    if (range.end || !choices.some(([, value]) => value === range.start)) {
      const window_ = document.createElement("span");
      window_.className = "window";
      window_.textContent = range.end ? `${range.start} → ${range.end}` : range.start;
      nav.append(window_);
    }
  }

  // ---- layout -----------------------------------------------------------------------------------
  function place(element, layout) {
    element.style.gridColumn = layout.x === null ? `span ${layout.width}` : `${layout.x + 1} / span ${layout.width}`;
    element.style.gridRow = layout.y === null ? `span ${layout.height}` : `${layout.y + 1} / span ${layout.height}`;
  }

  function build(dashboard) {
    page.views.forEach((view) => view.destroy && view.destroy());
    grid.replaceChildren();
    document.getElementById("title").textContent = `${dashboard.name} (local cloud, ${dashboard.region})`;
    document.title = `${dashboard.name}: local dashboard`;
    page.views = dashboard.widgets.map((widget, index) => {
      const element = document.createElement("section");
      element.className = `widget ${widget.kind}`;
      element.dataset.index = String(index);
      element.dataset.kind = widget.kind;
      place(element, widget.layout);
      grid.append(element);
      const make = { metric: metricView, alarm: alarmView, text: textView }[widget.kind] || unsupportedView;
      return make(element, widget, index);
    });
  }

  function heading(element, text) {
    const h2 = document.createElement("h2");
    h2.textContent = text;
    h2.title = text;
    element.append(h2);
    element.dataset.title = text;
    return h2;
  }

  function note(element, text, isError) {
    const p = document.createElement("p");
    p.className = isError ? "note error" : "note";
    p.textContent = text;
    element.append(p);
    return p;
  }

  // ---- metric widgets ---------------------------------------------------------------------------
  function metricView(element, widget, index) {
    heading(element, widget.title || "(untitled graph)");
    const problems = widget.series.filter((s) => s.error).map((s) => `${s.label}: ${s.error}`);
    if (problems.length) note(element, problems.join("; "), true);
    const chips = alarmChips(element, widget.alarms);
    if (!["timeSeries", "singleValue"].includes(widget.view)) note(element, `view "${widget.view}" drawn as a time series`);
    if (widget.alarms.length && !widget.series.length) note(element, "the alarm's metric graph is not drawn locally: its state is shown");
    const drawn = widget.series.filter((s) => s.visible && !s.error);
    const body = document.createElement("div");
    body.className = widget.view === "singleValue" ? "single" : "chart";
    element.append(body);
    const view = { index, widget, element, drawn, chips, plot: null, observer: null };
    view.destroy = () => { if (view.plot) view.plot.destroy(); if (view.observer) view.observer.disconnect(); };
    view.update = (data, alarms) => updateMetric(view, data || {}, alarms);
    if (widget.view !== "singleValue" && drawn.length) {
      view.plot = new uPlot(plotOptions(widget, drawn, body), [[], ...drawn.map(() => [])], body);
      view.observer = new ResizeObserver(() => view.plot.setSize(plotSize(body, view.plot)));
      view.observer.observe(body);
    }
    return view;
  }

  function plotSize(body, plot) {
    const legend = plot && plot.root.querySelector(".u-legend");
    const legendPx = legend ? legend.offsetHeight + 4 : LEGEND_PX;
    return { width: Math.max(120, body.clientWidth), height: Math.max(60, body.clientHeight - legendPx) };
  }

  function colourOf(series, position) {
    return series.color || PALETTE[position % PALETTE.length];
  }

  function plotOptions(widget, drawn, body) {
    const axisProps = (side) => (widget.yAxis && widget.yAxis[side]) || {};
    const annotationValues = (side) => widget.horizontal.filter((h) => h.yAxis === side).map((h) => h.value);
    const scaleRange = (side) => (u, dataMin, dataMax) => {
      const props = axisProps(side);
      const values = [dataMin, dataMax, ...annotationValues(side)].filter((v) => v !== null && Number.isFinite(v));
      const low = props.min ?? Math.min(0, ...values);
      let high = props.max ?? Math.max(...values, 0);
      if (high <= low) high = low + 1;
      return [low, props.max === undefined ? high * 1.05 : high];
    };
    const hasRight = drawn.some((s) => s.yAxis === "right");
    const axes = [{}, { scale: "y", label: axisProps("left").label, size: 50 }];
    if (hasRight) axes.push({ scale: "y2", side: 1, grid: { show: false }, label: axisProps("right").label, size: 50 });
    return {
      ...plotSize(body),
      // UTC like the drill reports and the range in the URL.
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"),
      scales: {
        x: { time: true, range: () => [page.windowStart, page.windowEnd] },
        y: { range: scaleRange("left") },
        y2: { range: scaleRange("right") },
      },
      axes,
      // Labels only, as on the console (no hover values under the graph).
      legend: { show: widget.legend !== "hidden", live: false },
      series: [
        {},
        ...drawn.map((s, position) => ({
          label: s.label,
          stroke: colourOf(s, position),
          width: 1.5,
          scale: s.yAxis === "right" ? "y2" : "y",
          fill: widget.stacked ? `${colourOf(s, position)}55` : undefined,
          spanGaps: false,
          points: { show: true, size: 4 },
        })),
      ],
      hooks: { draw: [(u) => drawAnnotations(u, widget.horizontal)] },
    };
  }

  function drawAnnotations(u, annotations) {
    const ctx = u.ctx;
    for (const line of annotations) {
      const scale = line.yAxis === "right" ? "y2" : "y";
      if (!u.scales[scale] || u.scales[scale].min === undefined) continue;
      const y = u.valToPos(line.value, scale, true);
      ctx.save();
      ctx.strokeStyle = line.color || "#d62728";
      ctx.setLineDash([5, 4]);
      ctx.beginPath();
      ctx.moveTo(u.bbox.left, y);
      ctx.lineTo(u.bbox.left + u.bbox.width, y);
      ctx.stroke();
      if (line.label) {
        ctx.fillStyle = ctx.strokeStyle;
        ctx.fillText(line.label, u.bbox.left + 4, y - 4);
      }
      ctx.restore();
    }
  }

  function updateMetric(view, data, alarms) {
    const tables = view.drawn.map((s) => {
      const got = data[s.key] || { t: [], v: [] };
      return [got.t, got.v];
    });
    const latest = {};
    const peak = {};
    const errors = [];
    view.drawn.forEach((s, position) => {
      const got = data[s.key] || { t: [], v: [], status: "Missing" };
      latest[s.label] = got.v.length ? got.v[got.v.length - 1] : null;
      peak[s.label] = got.v.length ? Math.max(...got.v) : null;
      if (got.status && !["Complete", "PartialData"].includes(got.status)) errors.push(`${s.label}: ${(got.messages || [got.status]).join(" ")}`);
    });
    view.element.dataset.latest = JSON.stringify(latest);
    view.element.dataset.peak = JSON.stringify(peak);
    view.element.dataset.points = String(tables.reduce((n, [t]) => n + t.length, 0));
    showErrors(view, errors);
    updateChips(view.chips, alarms);
    if (view.widget.view === "singleValue") return drawSingleValues(view, latest);
    if (!view.plot) return;
    let aligned = tables.some(([t]) => t.length) ? uPlot.join(tables) : [[], ...tables.map(() => [])];
    // Stacked: each series is drawn on top of the ones before it (cumulative values, filled).
    if (view.widget.stacked) aligned = stack(aligned);
    view.plot.setData(aligned);
    const empty = view.element.querySelector(".empty") || Object.assign(document.createElement("div"), { className: "empty" });
    empty.textContent = Number(view.element.dataset.points) ? "" : "no data in this time range";
    view.plot.root.parentElement.append(empty);
  }

  function stack(aligned) {
    const [xs, ...ys] = aligned;
    const running = xs.map(() => 0);
    return [xs, ...ys.map((values) => values.map((v, i) => (v === null || v === undefined ? null : (running[i] += v))))];
  }

  function drawSingleValues(view, latest) {
    const body = view.element.querySelector(".single");
    body.replaceChildren();
    view.drawn.forEach((s, position) => {
      const cell = document.createElement("div");
      const value = latest[s.label];
      cell.innerHTML = '<div class="value"></div><div class="label"></div>';
      cell.querySelector(".value").textContent = value === null ? "–" : formatNumber(value);
      cell.querySelector(".value").style.color = colourOf(s, position);
      cell.querySelector(".label").textContent = s.label;
      body.append(cell);
    });
  }

  function formatNumber(value) {
    return Math.abs(value) >= 100 || Number.isInteger(value) ? value.toFixed(0) : value.toPrecision(3);
  }

  function showErrors(view, errors) {
    let line = view.element.querySelector(".note.data-error");
    if (!errors.length) { if (line) line.remove(); return; }
    if (!line) {
      line = note(view.element, "", true);
      line.classList.add("data-error");
      view.element.insertBefore(line, view.element.children[1] || null);
    }
    line.textContent = errors.join("; ");
  }

  // ---- alarm widgets ----------------------------------------------------------------------------
  function alarmChips(element, arns) {
    const h2 = element.querySelector("h2");
    return arns.map((arn) => {
      const chip = document.createElement("span");
      chip.className = "chip";
      chip.dataset.arn = arn;
      h2.append(chip);
      return chip;
    });
  }

  function updateChips(chips, alarms) {
    for (const chip of chips) {
      const alarm = (alarms || {})[chip.dataset.arn] || {};
      chip.className = `chip state-${alarm.state || "unknown"}`;
      chip.textContent = alarm.state || alarm.error || "?";
    }
  }

  function alarmView(element, widget, index) {
    const h2 = heading(element, widget.title || "Alarms");
    const list = document.createElement("ul");
    list.className = "alarms";
    element.append(list);
    const view = { index, widget, element };
    view.update = (_data, alarms) => {
      const rows = widget.alarms.map((arn) => ({ arn, ...((alarms || {})[arn] || { error: "not reported" }) }));
      const shown = widget.states.length ? rows.filter((r) => widget.states.includes(r.state)) : rows;
      sortAlarms(shown, widget.sortBy);
      list.replaceChildren(...shown.map(alarmRow));
      const inAlarm = rows.filter((r) => r.state === "ALARM").length;
      h2.textContent = `${widget.title || "Alarms"} (${inAlarm} in ALARM of ${rows.length})`;
    };
    return view;
  }

  function sortAlarms(rows, sortBy) {
    const byName = (a, b) => String(a.name).localeCompare(String(b.name));
    const recent = (a, b) => String(b.updated || "").localeCompare(String(a.updated || ""));
    if (sortBy === "stateUpdatedTimestamp") rows.sort((a, b) => (STATE_ORDER[a.state] ?? 3) - (STATE_ORDER[b.state] ?? 3) || recent(a, b));
    else if (sortBy === "timestamp") rows.sort(recent);
    else rows.sort(byName);
  }

  function alarmRow(row) {
    const item = document.createElement("li");
    item.className = `alarm state-${row.state || "unknown"}`;
    item.dataset.alarm = row.name || row.arn;
    item.dataset.state = row.state || "";
    item.title = row.reason || row.error || "";
    item.innerHTML = '<span class="dot"></span><span class="name"></span><small></small>';
    item.querySelector(".name").textContent = row.name || row.arn;
    item.querySelector("small").textContent = row.state || row.error;
    return item;
  }

  // ---- text and unsupported widgets -------------------------------------------------------------
  // Markdown is shown as text (headings, paragraphs, list items) and never parsed into HTML, so a
  // dashboard body cannot put markup or script into this page.
  function textView(element, widget, index) {
    if (widget.transparent) element.classList.add("transparent");
    const box = document.createElement("div");
    box.className = "text";
    let paragraph = null;
    for (const line of widget.markdown.split("\n")) {
      const heading_ = /^(#{1,3})\s+(.*)$/.exec(line);
      const item = /^[-*]\s+(.*)$/.exec(line);
      if (heading_ || item || !line.trim()) paragraph = null;
      if (!line.trim()) continue;
      if (heading_ || item) {
        const node = document.createElement(heading_ ? `h${heading_[1].length}` : "li");
        node.textContent = heading_ ? heading_[2] : item[1];
        box.append(node);
      } else if (paragraph) {
        paragraph.textContent += ` ${line}`;
      } else {
        paragraph = document.createElement("p");
        paragraph.textContent = line;
        box.append(paragraph);
      }
    }
    element.append(box);
    element.dataset.title = widget.markdown.split("\n")[0].replace(/^#+\s*/, "");
    return { index, widget, element, update: () => {} };
  }

  function unsupportedView(element, widget, index) {
    heading(element, widget.title || "widget");
    note(element, widget.reason, true);
    return { index, widget, element, update: () => {} };
  }

  // ---- refresh loop -----------------------------------------------------------------------------
  let timer = null;

  async function load() {
    const dashboard = await getJson("/api/dashboard");
    page.dashboard = dashboard;
    build(dashboard);
    drawRangeButtons();
  }

  async function refresh() {
    const range = currentRange();
    const query = new URLSearchParams({ start: range.start });
    if (range.end) query.set("end", range.end);
    const started = performance.now();
    const data = await getJson(`/api/data?${query}`);
    if (data.hash !== page.dashboard.hash) {
      await load(); // the stage was redeployed with another dashboard body
    }
    page.windowStart = Date.parse(data.range.start) / 1e3;
    page.windowEnd = Date.parse(data.range.end) / 1e3;
    for (const view of page.views) view.update((data.series || {})[String(view.index)], data.alarms);
    page.refreshes += 1;
    page.last = { ...data, series: undefined, pageMs: Math.round(performance.now() - started) };
    if (page.firstDataMs === null) page.firstDataMs = Math.round(performance.now());
    const calls = Object.entries(data.calls).map(([name, n]) => `${name} ${n}`).join(", ") || "none";
    statusLine.textContent =
      `updated ${new Date().toISOString().slice(11, 19)} UTC · 1 request → ${calls} (${data.queries} queries, ` +
      `${data.upstreamMs} ms) · every ${refreshSeconds} s`;
    setBanner(null);
    return !range.end || Date.parse(range.end) > Date.now();
  }

  async function refreshNow() {
    clearTimeout(timer);
    let again = true;
    try {
      if (!page.dashboard) await load();
      again = await refresh();
    } catch (error) {
      setBanner(`The local cloud's dashboard could not be read: ${error.message}. Retrying every ${refreshSeconds} s.`);
    }
    // A fixed window in the past does not change: no need to poll it.
    if (again) timer = setTimeout(refreshNow, refreshSeconds * 1000);
  }

  refreshNow();
})();
