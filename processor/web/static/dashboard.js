/* wa-billing dashboard: draws the charts from the page's <script type="application/json">
   block (no inline script; see the Content-Security-Policy). Requires Chart.js 4 (vendored). */
(function () {
  "use strict";
  var source = document.getElementById("chart-data");
  if (!source || typeof window.Chart === "undefined") {
    return;
  }
  var data = JSON.parse(source.textContent);
  var palette = ["#2563eb", "#16a34a", "#f59e0b", "#dc2626", "#7c3aed", "#0891b2",
                 "#db2777", "#65a30d", "#ea580c", "#475569"];
  var money = function (value) {
    return value.toFixed(4) + " " + data.currency;
  };
  var tooltip = {callbacks: {label: function (item) {
    return (item.dataset.label ? item.dataset.label + ": " : "") + money(item.parsed.y !== undefined && item.parsed.y !== null ? item.parsed.y : item.parsed);
  }}};

  function draw(id, config) {
    var canvas = document.getElementById(id);
    if (!canvas) {
      return;
    }
    config.options = Object.assign({responsive: true, maintainAspectRatio: false, animation: false},
                                   config.options || {});
    new window.Chart(canvas, config);
    canvas.setAttribute("data-drawn", "true");
  }

  draw("chart-daily", {
    type: "bar",
    data: {
      labels: data.days,
      datasets: data.daily.map(function (set, i) {
        return {label: set.label, data: set.data, backgroundColor: palette[i % palette.length]};
      })
    },
    options: {
      plugins: {tooltip: tooltip, legend: {position: "bottom"}},
      scales: {x: {stacked: true, title: {display: true, text: "day"}},
               y: {stacked: true, beginAtZero: true, title: {display: true, text: data.currency}}}
    }
  });

  draw("chart-markets", {
    type: "bar",
    data: {labels: data.markets.labels,
           datasets: [{label: "billed", data: data.markets.data, backgroundColor: palette[0]}]},
    options: {indexAxis: "y", plugins: {legend: {display: false}},
              scales: {x: {beginAtZero: true}}}
  });

  draw("chart-numbers", {
    type: "doughnut",
    data: {labels: data.numbers.labels,
           datasets: [{data: data.numbers.data, backgroundColor: palette}]},
    options: {plugins: {legend: {position: "bottom"}}}
  });
}());
