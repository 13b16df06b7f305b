// The compliance dashboard's charts: read the JSON block the page carries and draw each
// chart with the vendored Chart.js (loaded before this module as a deferred script).
// Nothing is fetched; the numbers are also in each chart's table.

function chartData() {
  const block = document.getElementById("dashboard-data");
  return block ? JSON.parse(block.textContent) : [];
}

function draw(spec) {
  const canvas = document.querySelector(`canvas[data-chart="${CSS.escape(spec.id)}"]`);
  if (!canvas || typeof window.Chart !== "function") {
    return null;
  }
  return new window.Chart(canvas, {
    type: spec.type,
    data: { labels: spec.labels, datasets: spec.datasets },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      scales: { y: { beginAtZero: true, ticks: { precision: 0 } } },
      plugins: { legend: { display: spec.datasets.length > 1 } },
    },
  });
}

export function drawAll() {
  const drawn = chartData().map(draw).filter(Boolean);
  document.body.dataset.chartsDrawn = String(drawn.length);
  return drawn;
}

drawAll();
