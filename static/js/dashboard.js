/* Meterdesk dashboard charts: one Chart.js chart per meter, fed by the chart JSON view.
   Refreshed whenever htmx swaps in fresh numbers, and on granularity changes. */
(function () {
  "use strict";
  const charts = new Map();
  let granularity = "day";

  function datasets(data) {
    const sets = [
      { type: "bar", label: "Usage per " + data.granularity, data: data.usage,
        backgroundColor: "rgba(59, 91, 219, 0.35)", order: 3, yAxisID: "y" },
      { type: "line", label: data.meter.aggregation === "last" ? "Value" : "Cumulative",
        data: data.cumulative, borderColor: "#3b5bdb", pointRadius: 0, tension: 0.15,
        order: 1, yAxisID: "y" },
    ];
    if (data.allowance) {
      sets.push({ type: "line", label: "Included allowance",
        data: data.labels.map(() => data.allowance), borderColor: "#2b8a3e",
        borderWidth: 1.5, pointRadius: 0, order: 2 });
    }
    if (data.projection) {
      const p = data.projection;
      sets.push({ type: "line", label: "Projection range (high)", data: p.high_path,
        borderColor: "rgba(230, 119, 0, 0.0)", backgroundColor: "rgba(230, 119, 0, 0.12)",
        pointRadius: 0, fill: "+1", order: 4 });
      sets.push({ type: "line", label: "Projection range (low)", data: p.low_path,
        borderColor: "rgba(230, 119, 0, 0.0)", pointRadius: 0, fill: false, order: 4 });
      sets.push({ type: "line", label: "Projected", data: p.expected_path,
        borderColor: "#e67700", borderDash: [6, 4], pointRadius: 0, order: 0 });
    }
    return sets;
  }

  function draw(canvas, data) {
    const existing = charts.get(canvas.id);
    if (existing) {
      existing.data.labels = data.labels;
      existing.data.datasets = datasets(data);
      existing.update("none");
      return;
    }
    charts.set(canvas.id, new Chart(canvas, {
      data: { labels: data.labels, datasets: datasets(data) },
      options: {
        responsive: true, maintainAspectRatio: false, animation: false,
        interaction: { mode: "index", intersect: false },
        scales: { y: { beginAtZero: true, title: { display: true, text: data.meter.unit_label } },
                  x: { ticks: { maxTicksLimit: 10, autoSkip: true } } },
        plugins: { legend: { position: "bottom",
          labels: { filter: (item) => !item.text.startsWith("Projection range") } } },
      },
    }));
  }

  function refresh() {
    document.querySelectorAll("canvas[data-chart-url]").forEach((canvas) => {
      const url = new URL(canvas.dataset.chartUrl, window.location.origin);
      url.searchParams.set("granularity", granularity);
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then((r) => (r.ok ? r.json() : Promise.reject(r.status)))
        .then((data) => {
          draw(canvas, data);
          canvas.dataset.total = String(data.total);
          canvas.dataset.points = String(data.usage.filter((v) => v > 0).length);
        })
        .catch(() => { canvas.dataset.error = "1"; });
    });
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
  document.body.addEventListener("htmx:afterSwap", (event) => {
    if (event.detail.target && event.detail.target.id === "summary") refresh();
  });
})();
