// A function's page: its runs charted by status (uPlot, vendored), kept current from the
// public metrics API, and the invoke form (its JSON checked before it is sent).
"use strict";

(() => {
  const CSRF = {"x-csrf-token": document.querySelector("meta[name=csrf-token]").content};
  // Stacked bottom to top; the API's names, shown as the dashboard shows statuses.
  const STATUSES = [
    ["Completed", "--ok"], ["Failed", "--bad"], ["Cancelled", "--muted"],
    ["Skipped", "--line"], ["Running", "--info"], ["Scheduled", "--warn"],
  ];
  const SHOWN = {Scheduled: "Queued"};
  const REFRESH_MS = 10_000;

  const charts = document.getElementById("charts");
  const plots = {};

  function css(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  // uPlot has no stacking of its own: each series is drawn as bars from zero up to the sum
  // of its status and those below it, topmost first, so each covers only its own share.
  function chartData(window) {
    const xs = window.buckets.map((b) => Date.parse(b.start) / 1000);
    const raw = STATUSES.map(([status]) => window.buckets.map((b) => b.counts[status] || 0));
    const stacked = [];
    let below = xs.map(() => 0);
    for (const counts of raw) {
      below = below.map((sum, i) => sum + counts[i]);
      stacked.push(below);
    }
    return {raw, data: [xs, ...stacked.reverse()]};
  }

  function draw(figure, window) {
    const {raw, data} = chartData(window);
    const key = figure.dataset.window;
    const plot = figure.querySelector(".plot");
    // Each bar spans its bucket, the newest one (now) included.
    const span = [Date.parse(window.from) / 1000, Date.parse(window.until) / 1000];
    if (plots[key]) {
      Object.assign(plots[key], {raw, span});
      plots[key].chart.setData(data);
    } else {
      const state = {raw, span};
      const series = [...STATUSES].reverse().map(([status, color], n) => ({
        label: SHOWN[status] || status,
        fill: css(color),
        stroke: css(color),
        width: 0,
        paths: uPlot.paths.bars({size: [0.85, 40], align: 1}),
        points: {show: false},
        // The legend tells the bucket's own count, not the stacked height.
        value: (u, v, si, i) => (i == null ? "—" : state.raw[STATUSES.length - 1 - n][i]),
      }));
      state.chart = new uPlot(
        {
          width: Math.max(plot.clientWidth, 300),
          height: 180,
          scales: {x: {time: true, range: () => state.span}, y: {range: (u, min, max) => [0, Math.max(max, 1)]}},
          axes: [
            {stroke: css("--muted"), grid: {stroke: css("--line")}},
            {stroke: css("--muted"), grid: {stroke: css("--line")}, incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000]},
          ],
          series: [{}, ...series],
        },
        data,
        plot,
      );
      plots[key] = state;
    }
    figure.dataset.drawn = String(window.runs);
    const d = window.duration_ms;
    const fields = {
      runs: String(window.runs),
      p50: d.p50 == null ? "—" : d.p50 + " ms",
      p95: d.p95 == null ? "—" : d.p95 + " ms",
      sampled: String(d.sampled),
    };
    for (const [name, text] of Object.entries(fields)) {
      figure.querySelector(`[data-field=${name}]`).textContent = text;
    }
  }

  function drawAll(metrics) {
    for (const figure of charts.querySelectorAll("figure[data-window]")) {
      draw(figure, metrics[figure.dataset.window]);
    }
  }

  async function refresh() {
    const response = await fetch(`/v1/functions/${encodeURIComponent(charts.dataset.slug)}/metrics`);
    if (response.ok) drawAll((await response.json()).data);
  }

  if (charts) {
    drawAll(JSON.parse(document.getElementById("function-metrics").textContent));
    setInterval(() => refresh().catch(() => {}), REFRESH_MS);
    addEventListener("resize", () => {
      for (const [key, state] of Object.entries(plots)) {
        const plot = document.querySelector(`#chart-${key} .plot`);
        state.chart.setSize({width: Math.max(plot.clientWidth, 300), height: 180});
      }
    });
  }

  document.addEventListener("submit", async (e) => {
    const form = e.target;
    if (form.id !== "invoke-function") return;
    e.preventDefault();
    const result = document.getElementById("invoke-result");
    result.className = "";
    result.replaceChildren();
    const {data, error} = parseDataObject(form.elements.data.value);  // dashboard.js
    if (error) {
      result.className = "error";
      result.textContent = error;
      return;
    }
    const response = await fetch(`/v1/functions/${encodeURIComponent(form.dataset.slug)}/invoke`, {
      method: "POST",
      headers: {"content-type": "application/json", ...CSRF},
      body: JSON.stringify({data}),
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      result.className = "error";
      result.textContent = "Refused: " + (body.error || response.status);
      return;
    }
    if (!body.data.run_id) {
      result.textContent = `Stored event ${body.data.event_id}; no run started now (held by the function's ${body.data.held}).`;
      return;
    }
    const link = document.createElement("a");
    link.id = "invoked-run";
    link.href = "/runs/" + body.data.run_id;
    link.textContent = body.data.run_id;
    result.append("Started run ", link);
    refresh().catch(() => {});
  });
})();
