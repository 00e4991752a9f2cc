// The live page: fetch /console/live/data every 2 s and redraw (Chart.js, no animation: cheap on a slow laptop).
(function () {
  "use strict";
  const PERIOD_MS = 2000;
  const common = { animation: false, responsive: true, maintainAspectRatio: false, plugins: { legend: { position: "bottom" } } };
  const time = (t) => new Date(t * 1000).toLocaleTimeString();
  let charts = null;

  function line(id, datasets) {
    return new Chart(document.getElementById(id), {
      type: "line", data: { labels: [], datasets: datasets.map((d) => ({ ...d, data: [], pointRadius: 0, borderWidth: 2, spanGaps: true })) },
      options: { ...common, scales: { y: { beginAtZero: true } } },
    });
  }

  function build() {
    return {
      rate: line("rate-chart", [{ label: "decisions/s", borderColor: "#2563eb" }]),
      latency: line("latency-chart", [
        { label: "p50", borderColor: "#16a34a" }, { label: "p95", borderColor: "#d97706" }, { label: "p99", borderColor: "#dc2626" },
      ]),
      offers: new Chart(document.getElementById("offers-chart"), {
        type: "bar",
        data: { labels: [], datasets: [
          { label: "presented", data: [], backgroundColor: "#93c5fd", yAxisID: "y" },
          { label: "acceptance rate (%)", data: [], backgroundColor: "#16a34a", yAxisID: "rate" },
        ] },
        options: { ...common, scales: { y: { beginAtZero: true, position: "left" }, rate: { beginAtZero: true, position: "right", max: 100, grid: { drawOnChartArea: false } } } },
      }),
    };
  }

  function rows(id, pairs) {
    const body = document.querySelector("#" + id + " tbody");
    body.replaceChildren(...(pairs.length ? pairs : [["none yet", ""]]).map(([k, v]) => {
      const tr = document.createElement("tr");
      tr.innerHTML = "<td></td><td></td>";
      tr.children[0].textContent = k; tr.children[1].textContent = v === "" ? "" : String(v);
      return tr;
    }));
  }

  function draw(data) {
    charts = charts || build();
    const labels = data.series.map((p) => time(p.at));
    charts.rate.data.labels = labels;
    charts.rate.data.datasets[0].data = data.series.map((p) => p.rate);
    charts.latency.data.labels = labels;
    ["p50", "p95", "p99"].forEach((k, i) => { charts.latency.data.datasets[i].data = data.series.map((p) => p[k]); });
    charts.offers.data.labels = data.offers.map((o) => o.offer);
    charts.offers.data.datasets[0].data = data.offers.map((o) => o.presented);
    charts.offers.data.datasets[1].data = data.offers.map((o) => (o.acceptance_rate === null ? 0 : 100 * o.acceptance_rate));
    Object.values(charts).forEach((c) => c.update("none"));
    offerTable(data.offers);
    rows("suppressions", data.suppressions);
    rows("degraded", data.degraded);
    rows("models", data.models);
    document.getElementById("serving-model").textContent = data.serving.model;
    document.getElementById("serving-catalogue").textContent = data.serving.catalogue;
    const status = document.getElementById("live-status");
    status.textContent = "updated " + time(data.at) + " · " + data.decisions + " decisions since start";
    document.body.dataset.livePoints = String(data.series.length);
  }

  function offerTable(offers) {
    const body = document.querySelector("#offers-table tbody");
    body.replaceChildren(...offers.map((o) => {
      const tr = document.createElement("tr");
      const rate = o.acceptance_rate === null ? "—" : (100 * o.acceptance_rate).toFixed(1) + "%";
      [o.offer, o.presented, o.contacts, o.accepted, rate].forEach((v) => { const td = document.createElement("td"); td.textContent = String(v); tr.appendChild(td); });
      return tr;
    }));
  }

  async function poll() {
    try {
      const answer = await fetch("/console/live/data", { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (answer.redirected || answer.status === 401) { window.location = "/console/login"; return; }
      if (answer.ok) draw(await answer.json());
    } catch (error) {
      document.getElementById("live-status").textContent = "not reachable: " + error;
    }
    setTimeout(poll, PERIOD_MS);
  }

  document.addEventListener("DOMContentLoaded", poll);
})();
