// strikes web UI: run list, metric charts (uPlot) and the task tree, polling while runs write.
// Every value from the store reaches the page through textContent, never as HTML.
"use strict";

const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777"];
const state = {
  runs: [],
  sort: { key: "started_at", dir: -1 },
  selected: new Set(),
  focused: null,
  xaxis: "step",
  pollMs: 2000,
  charts: new Map(),      // metric name -> { plot, key }
  openTasks: new Set(),   // task ids whose <details> are open
  detailKey: "",
  chartGeneration: 0,
  tick: 0,     // a refresh drops its results when a newer one has started
};

async function api(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(`${path}: ${response.status}`);
  return response.json();
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) if (child != null) node.append(child);
  return node;
}

function fmtValue(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "number") return Number.isInteger(value) ? String(value) : value.toPrecision(6).replace(/\.?0+(e|$)/, "$1");
  if (typeof value === "string") return value;
  return JSON.stringify(value);
}

function fmtTick(value) {
  if (value === 0 || Math.abs(value) >= 1e-3) return String(+value.toPrecision(4));
  return value.toExponential(1);
}

function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined) return "";
  if (seconds < 1) return `${Math.round(seconds * 1000)}ms`;
  if (seconds < 60) return `${seconds.toFixed(1)}s`;
  const m = Math.floor(seconds / 60), h = Math.floor(m / 60);
  return h ? `${h}h${String(m % 60).padStart(2, "0")}m` : `${m}m${String(Math.floor(seconds % 60)).padStart(2, "0")}s`;
}

function fmtTime(ms) {
  return ms ? new Date(ms).toLocaleString() : "";
}

// -- run list ---------------------------------------------------------------------------

async function loadRuns() {
  const status = document.getElementById("status").value;
  state.runs = await api(`/api/runs${status ? `?status=${encodeURIComponent(status)}` : ""}`);
  renderRuns();
}

function visibleRuns() {
  const needle = document.getElementById("filter").value.trim().toLowerCase();
  const shown = state.runs.filter((run) => !needle || [run.name, run.project, run.id, ...run.tags]
    .some((text) => text.toLowerCase().includes(needle)));
  const { key, dir } = state.sort;
  shown.sort((a, b) => {
    const x = a[key] ?? -Infinity, y = b[key] ?? -Infinity;
    return (x < y ? -1 : x > y ? 1 : 0) * dir;
  });
  return shown;
}

function renderRuns() {
  const body = document.querySelector("#runs tbody");
  const shown = visibleRuns();
  body.replaceChildren(...shown.map((run) => {
    const box = el("input", { type: "checkbox", "data-testid": "select-run", title: "chart this run" });
    box.checked = state.selected.has(run.id);
    box.addEventListener("click", (event) => {
      event.stopPropagation();
      if (box.checked) state.selected.add(run.id); else state.selected.delete(run.id);
      refreshCharts();
    });
    const row = el("tr", { "data-run-id": run.id, "data-testid": "run-row", onclick: () => focusRun(run.id) },
      el("td", {}, box),
      el("td", { text: run.name, title: run.id }),
      el("td", { text: run.project }),
      el("td", { text: run.crashed ? "crashed" : run.status, class: `status-${run.crashed ? "failed" : run.status}`, title: run.crashed ? "running, but its writer has gone silent" : "" }),
      el("td", { text: fmtTime(run.started_at) }),
      el("td", { text: fmtDuration(run.duration) }));
    if (run.id === state.focused) row.classList.add("focused");
    return row;
  }));
  document.getElementById("runs-empty").hidden = shown.length > 0;
  for (const th of document.querySelectorAll("th[data-sort]")) {
    th.classList.toggle("asc", th.dataset.sort === state.sort.key && state.sort.dir === 1);
    th.classList.toggle("desc", th.dataset.sort === state.sort.key && state.sort.dir === -1);
  }
}

function chartedRuns() {
  if (state.selected.size) return [...state.selected];
  return state.focused ? [state.focused] : [];
}

async function focusRun(id) {
  state.focused = id;
  state.detailKey = "";
  renderRuns();
  await Promise.all([loadDetail(), refreshCharts()]);
}

// -- charts -----------------------------------------------------------------------------

async function refreshCharts() {
  const ids = chartedRuns();
  document.getElementById("selection").textContent = state.selected.size ? `${state.selected.size} selected` : "";
  const generation = ++state.chartGeneration;
  const results = await Promise.all(ids.map((id) => api(`/api/runs/${id}/metrics`).catch(() => null)));
  if (generation !== state.chartGeneration) return;
  const byMetric = new Map();
  results.forEach((result, index) => {
    if (!result) return;
    for (const [name, series] of Object.entries(result.series)) {
      if (!byMetric.has(name)) byMetric.set(name, []);
      byMetric.get(name).push({ run: result, series, color: COLORS[index % COLORS.length] });
    }
  });
  const container = document.getElementById("charts");
  for (const [name, chart] of state.charts) {
    if (!byMetric.has(name)) { chart.plot.destroy(); chart.box.remove(); state.charts.delete(name); }
  }
  for (const [name, lines] of [...byMetric.entries()].sort()) drawChart(container, name, lines);
  document.getElementById("charts-empty").hidden = byMetric.size > 0;
  updateLive();
}

function drawChart(container, name, lines) {
  const x = state.xaxis;
  const xs = ({ run, series }) => x === "elapsed" ? series.time.map((t) => t - run.started_at) : series[x];
  const tables = lines.map((line) => [xs(line), line.series.value]);
  const xLabel = x === "elapsed" ? "seconds since start" : x;
  const data = tables.length === 1 ? tables[0] : uPlot.join(tables);
  const key = `${x}|${lines.map((line) => line.run.id).join(",")}`;
  const existing = state.charts.get(name);
  if (existing && existing.key === key) { existing.plot.setData(data); return; }
  if (existing) { existing.plot.destroy(); existing.box.remove(); }
  const box = el("div", { class: "chart", "data-testid": "chart", "data-metric": name }, el("h3", { text: name }));
  container.append(box);
  const width = Math.max(320, box.clientWidth - 10);
  const plot = new uPlot({
    width, height: 220,
    scales: { x: { time: x === "time" } },
    // uPlot's default tick labels round small values to 0.
    axes: [
      x === "time" ? { label: xLabel } : { label: xLabel, values: (u, ticks) => ticks.map(fmtTick) },
      { values: (u, ticks) => ticks.map(fmtTick) },
    ],
    series: [{ label: xLabel }, ...lines.map(({ run, series, color }) => ({
      // Dots only for short series: a single score is invisible as a line.
      label: run.name, stroke: color, width: 1.5, spanGaps: true,
      points: { show: series.value.length < 60, size: 6, fill: color },
    }))],
  }, data, box);
  state.charts.set(name, { plot, key, box });
}

// -- run detail -------------------------------------------------------------------------

async function loadDetail() {
  if (!state.focused) return;
  const run = await api(`/api/runs/${state.focused}`);
  const key = JSON.stringify(run);
  if (key === state.detailKey) return;  // unchanged: keep the page (and open tasks) as they are
  state.detailKey = key;
  renderDetail(run);
}

function kvTable(entries) {
  return el("table", { class: "kv" }, ...entries.map(([k, v]) =>
    el("tr", {}, el("td", { text: k }), el("td", {}, valueNode(v)))));
}

function valueNode(value) {
  if (value !== null && typeof value === "object") return el("pre", { text: JSON.stringify(value, null, 2) });
  return document.createTextNode(fmtValue(value));
}

function errorNodes(errors) {
  return errors.map((error) => el("div", { class: "error", "data-testid": "error" },
    el("strong", { text: `${error.type}: ${error.message}` }), el("pre", { text: error.traceback })));
}

function artifactNodes(artifacts) {
  return artifacts.map((artifact) => el("div", {},
    el("span", { text: `${artifact.name} ` }),
    ...artifact.files.map((file) => el("a", { href: `/api/objects/${file.hash}`, text: file.path || artifact.name, download: file.path || artifact.name }))));
}

function taskNode(task) {
  const details = el("details", { class: "task", "data-testid": "task", "data-task": task.name });
  details.open = state.openTasks.has(task.id);
  details.addEventListener("toggle", () => {
    if (details.open) state.openTasks.add(task.id); else state.openTasks.delete(task.id);
  });
  const scores = Object.entries(task.scores).map(([k, v]) => `${k}=${fmtValue(v)}`).join(" ");
  details.append(el("summary", {},
    el("span", { text: task.name }), " ",
    el("span", { class: `status-${task.status}`, text: task.status }), " ",
    el("span", { class: "muted", text: `${fmtDuration(task.duration)} ${scores}` })));
  const values = el("div", { class: "values" });
  const sections = [["inputs", task.inputs], ["outputs", task.outputs], ["params", task.params], ["scores", task.scores]];
  for (const [title, object] of sections) {
    if (Object.keys(object).length) values.append(el("div", { class: "muted", text: title }), kvTable(Object.entries(object)));
  }
  values.append(...errorNodes(task.errors), ...artifactNodes(task.artifacts));
  details.append(values, ...task.tasks.map(taskNode));
  return details;
}

function provenanceRows(p) {
  const rows = [];
  if (p.git_commit) {
    const dirty = p.git_dirty ? ", dirty" : ", clean";
    rows.push(["git", `${p.git_commit.slice(0, 12)}${p.git_branch ? ` on ${p.git_branch}` : ""}${dirty}`]);
  }
  if (p.git_remote) rows.push(["remote", p.git_remote]);
  if (p.command) rows.push(["command", p.command.join(" ")]);
  if (p.cwd) rows.push(["cwd", p.cwd]);
  if (p.python_version) rows.push(["python", `${p.python_implementation || ""} ${p.python_version}`.trim()]);
  if (p.platform) rows.push(["platform", p.platform]);
  if (p.hostname) rows.push(["host", p.pid ? `${p.hostname} (pid ${p.pid})` : p.hostname]);
  if (p.packages != null) rows.push(["packages", String(p.packages)]);
  for (const [name, value] of Object.entries(p.env || {})) rows.push([`$${name}`, value]);
  return rows;
}

function renderDetail(run) {
  const pane = document.getElementById("run");
  const metricRows = Object.entries(run.metrics).map(([name, m]) =>
    el("tr", {}, ...[name, m.count, m.last, m.min, m.max].map((v) => el("td", { text: fmtValue(v) }))));
  const children = [
    el("h2", { text: `${run.name} ` }, el("span", { class: `status-${run.status}`, text: run.crashed ? "crashed" : run.status })),
    kvTable([["id", run.id], ["project", run.project], ["started", fmtTime(run.started_at)],
      ["duration", fmtDuration(run.duration)], ["tags", run.tags.join(", ")], ...(run.error ? [["error", run.error]] : [])]),
    ...errorNodes(run.errors),
    Object.keys(run.params).length ? el("h2", { text: "Params" }) : null,
    Object.keys(run.params).length ? kvTable(Object.entries(run.params)) : null,
    metricRows.length ? el("h2", { text: "Metrics" }) : null,
    metricRows.length ? el("table", {}, el("tr", {}, ...["metric", "count", "last", "min", "max"].map((h) => el("th", { text: h }))), ...metricRows) : null,
    run.provenance ? el("h2", { text: "Provenance" }) : null,
    run.provenance ? el("div", { "data-testid": "provenance" }, kvTable(provenanceRows(run.provenance))) : null,
    run.artifacts.length ? el("h2", { text: "Artifacts" }) : null,
    ...artifactNodes(run.artifacts),
    el("h2", { text: `Tasks (${run.task_count})` }),
    el("div", { "data-testid": "task-tree" }, ...run.tasks.map(taskNode)),
  ];
  pane.replaceChildren(...children.filter((child) => child != null));
}

// -- live updates -----------------------------------------------------------------------

function watchedRunning() {
  const running = new Set(state.runs.filter((run) => run.status === "running").map((run) => run.id));
  return [...chartedRuns(), state.focused].some((id) => id && running.has(id));
}

function updateLive() {
  document.getElementById("live").hidden = !watchedRunning();
}

async function poll() {
  const wasRunning = watchedRunning();
  state.tick += 1;
  try {
    // Listing reads every manifest: every poll while something runs, else every fifth.
    if (state.runs.some((run) => run.status === "running") || state.tick % 5 === 0) await loadRuns();
    // One more refresh after the run ends, so the final points and status show.
    if (wasRunning || watchedRunning()) await Promise.all([refreshCharts(), loadDetail()]);
    updateLive();
  } finally {
    setTimeout(poll, state.pollMs);
  }
}

async function start() {
  const config = await api("/api/config");
  state.pollMs = Math.max(250, config.poll_seconds * 1000);
  document.getElementById("store").textContent = config.store;
  document.getElementById("filter").addEventListener("input", renderRuns);
  document.getElementById("status").addEventListener("change", loadRuns);
  document.getElementById("select-all").addEventListener("change", (event) => {
    for (const run of visibleRuns()) {
      if (event.target.checked) state.selected.add(run.id); else state.selected.delete(run.id);
    }
    renderRuns();
    refreshCharts();
  });
  for (const th of document.querySelectorAll("th[data-sort]")) {
    th.addEventListener("click", () => {
      const key = th.dataset.sort;
      state.sort = { key, dir: state.sort.key === key ? -state.sort.dir : 1 };
      renderRuns();
    });
  }
  for (const radio of document.querySelectorAll("input[name=xaxis]")) {
    radio.addEventListener("change", () => { state.xaxis = radio.value; refreshCharts(); });
  }
  await loadRuns();
  if (state.runs.length) await focusRun(state.runs[0].id);
  setTimeout(poll, state.pollMs);
}

start();
