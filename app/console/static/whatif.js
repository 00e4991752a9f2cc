// The what-if comparison: draw the offer mix and the value estimates when a replay's result is swapped in.
(function () {
  "use strict";
  const options = { animation: false, responsive: true, maintainAspectRatio: false, plugins: { legend: { position: "bottom" } } };
  const charts = {};

  function replace(id, config) {
    if (charts[id]) charts[id].destroy();
    const canvas = document.getElementById(id);
    if (canvas) charts[id] = new Chart(canvas, config);
  }

  function draw(data) {
    replace("mix-chart", {
      type: "bar",
      data: { labels: data.offers, datasets: [
        { label: "logged", data: data.logged, backgroundColor: "#cbd5e1" },
        { label: "serving catalogue (replayed)", data: data.current, backgroundColor: "#60a5fa" },
        { label: "draft", data: data.candidate, backgroundColor: "#f59e0b" },
      ] },
      options: { ...options, scales: { y: { beginAtZero: true, title: { display: true, text: "presentations" } } } },
    });
    const value = data.measures.value;
    if (value) {
      replace("value-chart", {
        type: "bar",
        data: { labels: value.map((b) => b.label), datasets: [
          { label: "value per presented offer", data: value.map((b) => b.estimate), backgroundColor: value.map((b, i) => (i === 0 ? "#60a5fa" : "#f59e0b")), order: 2 },
          // The 95% interval as a thin floating bar over each estimate.
          { label: "95% interval", data: value.map((b) => [b.low, b.high]), grouped: false, barPercentage: 0.12, backgroundColor: "rgba(31, 41, 55, 0.75)", order: 1 },
        ] },
        options: { ...options, scales: { y: { beginAtZero: true } } },
      });
    }
    document.body.dataset.whatifDrawn = String(data.offers.length);
  }

  document.addEventListener("htmx:afterSettle", function (event) {
    const script = document.getElementById("whatif-data");
    if (script && event.detail.target.id === "whatif-result") draw(JSON.parse(script.textContent));
  });
})();
