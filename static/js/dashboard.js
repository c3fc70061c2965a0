/* Meterdesk dashboard charts: one Chart.js chart per meter, fed by the chart JSON view.
   Refreshed whenever htmx swaps in fresh numbers, and on granularity changes.

   Bars (usage per day or hour) have their own axis on the left; the cumulative line, the
   allowance and the projection share the right axis, so daily and hourly bars stay
   visible next to a month's total. `last` meters (seats) have no bars: one value line,
   in whole steps. A chart that fails to load says so in its box and retries; a failing
   dashboard refresh says the numbers may be out of date. */
(function () {
  "use strict";
  const charts = new Map();
  const retries = new Map();
  let granularity = "day";
  let lastUpdated = new Date();

  function hhmm(date) {
    return date.toISOString().slice(11, 16) + " UTC";
  }

  function datasets(data) {
    const last = data.meter.aggregation === "last";
    const line = last ? "y" : "y2";
    const sets = [];
    // Points only while they are few (a day's data would otherwise be an invisible line).
    const points = data.usage.length <= 31 ? 2.5 : 0;
    if (last) {
      sets.push({ type: "line", label: "Value (" + data.meter.unit_plural + ")", data: data.cumulative,
        borderColor: "#3b5bdb", pointRadius: points, stepped: true, order: 1, yAxisID: "y" });
    } else {
      sets.push({ type: "bar", label: data.meter.unit_plural + " per " + data.granularity,
        data: data.usage, backgroundColor: "rgba(59, 91, 219, 0.45)", order: 3, yAxisID: "y" });
      sets.push({ type: "line", label: "Cumulative " + data.meter.unit_plural, data: data.cumulative,
        borderColor: "#1c2f8c", pointRadius: points, tension: 0.15, order: 1, yAxisID: line });
    }
    if (data.allowance) {
      sets.push({ type: "line", label: "Included allowance",
        data: data.labels.map(() => data.allowance), borderColor: "#2b8a3e",
        borderWidth: 1.5, pointRadius: 0, order: 2, yAxisID: line });
    }
    // "none": too early to project; the dashboard says so, the chart draws no line.
    if (data.projection && data.projection.method !== "none") {
      const p = data.projection;
      sets.push({ type: "line", label: "Projection range (high)", data: p.high_path,
        borderColor: "rgba(230, 119, 0, 0.0)", backgroundColor: "rgba(230, 119, 0, 0.12)",
        pointRadius: 0, fill: "+1", order: 4, yAxisID: line });
      sets.push({ type: "line", label: "Projection range (low)", data: p.low_path,
        borderColor: "rgba(230, 119, 0, 0.0)", pointRadius: 0, fill: false, order: 4, yAxisID: line });
      sets.push({ type: "line", label: "Projected", data: p.expected_path,
        borderColor: "#e67700", borderDash: [6, 4], pointRadius: 0, order: 0, yAxisID: line });
    }
    return sets;
  }

  function scales(data) {
    const last = data.meter.aggregation === "last";
    const units = data.meter.unit_plural;
    const x = { ticks: { maxTicksLimit: 10, autoSkip: true },
                title: { display: true, text: data.granularity === "hour" ? "Hour (UTC)" : "Day (UTC)" } };
    // Usage values are whole numbers: no 0.5 steps on either axis.
    const y = { position: "left", beginAtZero: true, ticks: { precision: 0 },
                title: { display: true, text: last ? units : units + " per " + data.granularity } };
    if (last) return { x, y };
    const y2 = { position: "right", beginAtZero: true, ticks: { precision: 0 },
                 grid: { drawOnChartArea: false },
                 title: { display: true, text: units + " this period (cumulative)" } };
    return { x, y, y2 };
  }

  function message(canvas, text) {
    const box = canvas.parentElement;
    let note = box.querySelector(".chart-message");
    if (!text) {
      if (note) note.remove();
      return;
    }
    if (!note) {
      note = document.createElement("p");
      note.className = "chart-message";
      note.setAttribute("role", "status");
      box.appendChild(note);
    }
    note.textContent = text;
  }

  function draw(canvas, data) {
    const existing = charts.get(canvas.id);
    if (existing) {
      existing.data.labels = data.labels;
      existing.data.datasets = datasets(data);
      existing.options.scales = scales(data);
      existing.update("none");
      return;
    }
    charts.set(canvas.id, new Chart(canvas, {
      data: { labels: data.labels, datasets: datasets(data) },
      options: {
        responsive: true, maintainAspectRatio: false, animation: false,
        interaction: { mode: "index", intersect: false },
        scales: scales(data),
        plugins: { legend: { position: "bottom",
          labels: { filter: (item) => !item.text.startsWith("Projection range") } } },
      },
    }));
  }

  function load(canvas) {
    const url = new URL(canvas.dataset.chartUrl, window.location.origin);
    url.searchParams.set("granularity", granularity);
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then((r) => (r.ok ? r.json() : Promise.reject(r.status)))
      .then((data) => {
        draw(canvas, data);
        delete canvas.dataset.error;
        message(canvas, "");
        retries.delete(canvas.id);
        canvas.dataset.total = String(data.total);
        canvas.dataset.points = String(data.usage.filter((v) => v > 0).length);
      })
      .catch(() => {
        canvas.dataset.error = "1";
        message(canvas, "Couldn't load the chart — retrying");
        const attempt = (retries.get(canvas.id) || 0) + 1;
        retries.set(canvas.id, attempt);
        // 2 s, 4 s, 8 s ... up to a minute between tries.
        setTimeout(() => load(canvas), Math.min(60000, 1000 * 2 ** attempt));
      });
  }

  function refresh() {
    document.querySelectorAll("canvas[data-chart-url]").forEach(load);
  }

  function stale(on) {
    const summary = document.getElementById("summary");
    let notice = document.getElementById("stale-notice");
    if (!on) {
      if (notice) notice.remove();
      if (summary) summary.classList.remove("stale");
      return;
    }
    if (!summary) return;
    if (!notice) {
      notice = document.createElement("div");
      notice.id = "stale-notice";
      notice.className = "banner banner-stale";
      notice.setAttribute("role", "status");
      notice.dataset.testid = "stale-notice";
      summary.parentElement.insertBefore(notice, summary);
    }
    notice.textContent = "Numbers may be out of date (last updated " + hhmm(lastUpdated) +
      "). We keep trying to refresh them.";
    summary.classList.add("stale");
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("button[data-granularity]").forEach((button) => {
      button.addEventListener("click", () => {
        granularity = button.dataset.granularity;
        document.querySelectorAll("button[data-granularity]").forEach((b) =>
          b.setAttribute("aria-pressed", String(b === button)));
        refresh();
      });
    });
    refresh();
  });
  function fromSummary(event) {
    const elt = event.detail && event.detail.elt;
    return elt && elt.id === "summary";
  }
  document.body.addEventListener("htmx:afterSwap", (event) => {
    if (event.detail.target && event.detail.target.id === "summary") {
      lastUpdated = new Date();
      stale(false);
      refresh();
    }
  });
  document.body.addEventListener("htmx:responseError", (event) => { if (fromSummary(event)) stale(true); });
  document.body.addEventListener("htmx:sendError", (event) => { if (fromSummary(event)) stale(true); });
})();
