/* cloudmeter's web page: draws the charts the server describes in <script id="data"> with the vendored Chart.js,
   and sends an admin's actions to the API. No figure is computed here: every value plotted is one the server
   took from the report the API serves (see cloudmeter/api/web/charts.py). A null is drawn as a gap, never as 0. */
(function () {
  "use strict";

  var PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"];
  var payload = JSON.parse(document.getElementById("data").textContent);
  var tz = payload.tz || "UTC";

  Chart.defaults.animation = false;
  Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  Chart.defaults.color = "#1d2430";
  Chart.defaults.maintainAspectRatio = false;

  function formatter(zone, style) {
    var options = { timeZone: zone, month: "short" };
    if (style === "month") {
      options.year = "numeric";
    } else {
      options.day = "numeric";
    }
    if (style === "time") {
      options.hour = "2-digit";
      options.minute = "2-digit";
      options.hourCycle = "h23";
    }
    if (style === "date") options.year = "numeric";
    return new Intl.DateTimeFormat("en-GB", options);
  }

  function axisLabel(spec) {
    var zone = spec.x === "day" ? "UTC" : tz; // a day is a calendar date (its UTC midnight), an hour an instant
    var ticks = formatter(zone, spec.x_format === "month" ? "month" : "day");
    var full = formatter(zone, spec.x === "day" ? "date" : "time");
    return {
      tick: function (value) { return ticks.format(new Date(value)); },
      full: function (value) { return full.format(new Date(value)); },
    };
  }

  function number(value, digits) {
    if (value === null || value === undefined) return "no data";
    return value.toLocaleString("en-GB", { maximumFractionDigits: digits === undefined ? 2 : digits });
  }

  function dataset(spec, d, index) {
    var colour = d.color || PALETTE[index % PALETTE.length];
    var out = {
      label: d.label,
      data: d.data,
      borderColor: colour,
      backgroundColor: d.fill_color || colour,
      borderWidth: d.width || 2,
      borderDash: d.dash || [],
      pointRadius: d.points === undefined ? 0 : d.points,
      pointHoverRadius: 4,
      stepped: d.stepped || false,
      spanGaps: false,
      fill: d.fill || false,
      tension: 0,
      order: d.order || 0,
    };
    if (d.stack) out.stack = d.stack;
    if (spec.type === "bar") out.borderWidth = 0;
    if (d.colors) out.backgroundColor = d.colors;
    return out;
  }

  function xyOptions(spec) {
    var labels = axisLabel(spec);
    var x = {
      type: "linear",
      min: spec.x_min,
      max: spec.x_max,
      title: { display: !!spec.x_title, text: spec.x_title },
      ticks: { callback: labels.tick, maxRotation: 0, autoSkip: true, autoSkipPadding: 12 },
      afterBuildTicks: spec.x_ticks ? function (axis) {
        axis.ticks = spec.x_ticks.map(function (v) { return { value: v }; });
      } : undefined,
      grid: { color: "#eceff3" },
    };
    return {
      parsing: false,
      normalized: true,
      interaction: { mode: "nearest", axis: "x", intersect: false },
      scales: {
        x: x,
        y: {
          beginAtZero: true,
          suggestedMax: spec.y_max,
          title: { display: true, text: spec.y_title },
          grid: { color: "#eceff3" },
        },
      },
      plugins: {
        legend: { position: "bottom", labels: { boxWidth: 14, boxHeight: 2, usePointStyle: false } },
        tooltip: {
          callbacks: {
            title: function (items) { return items.length ? labels.full(items[0].parsed.x) : ""; },
            label: function (item) { return item.dataset.label + ": " + number(item.parsed.y) + " " + (spec.unit || ""); },
          },
        },
      },
    };
  }

  function barOptions(spec) {
    var value = {
      stacked: !!spec.stacked,
      beginAtZero: true,
      title: { display: true, text: spec.y_title },
      grid: { color: "#eceff3" },
    };
    var category = {
      stacked: !!spec.stacked,
      ticks: {
        autoSkip: false,
        font: { size: 12 },
        callback: function (value) {
          // a long name is shortened on a narrow screen (the tooltip has it whole); a pair is two lines
          var room = Math.max(12, Math.floor(this.chart.width / 20));
          var lines = [].concat(this.chart.data.labels[value]);
          return lines.map(function (text) {
            if (text.length <= room) return text;
            var head = Math.floor((room - 1) / 2);
            return text.slice(0, head) + "…" + text.slice(text.length - (room - 1 - head));
          });
        },
      },
      grid: { display: false },
    };
    return {
      indexAxis: spec.horizontal ? "y" : "x",
      scales: spec.horizontal ? { x: value, y: category } : { x: category, y: value },
      plugins: {
        legend: { display: spec.legend !== false, position: "bottom", labels: { boxWidth: 14 } },
        tooltip: {
          callbacks: {
            label: function (item) {
              var v = spec.horizontal ? item.parsed.x : item.parsed.y;
              return item.dataset.label + ": " + number(v) + " " + (spec.unit || "");
            },
          },
        },
      },
    };
  }

  function draw(spec) {
    var canvas = document.getElementById("chart-" + spec.id);
    if (!canvas) return;
    if (spec.height) canvas.parentNode.style.height = spec.height + "px";
    var config = {
      type: spec.type,
      data: { datasets: spec.datasets.map(function (d, i) { return dataset(spec, d, i); }) },
      options: spec.type === "bar" ? barOptions(spec) : xyOptions(spec),
    };
    if (spec.labels) config.data.labels = spec.labels;
    new Chart(canvas, config);
  }

  (payload.charts || []).forEach(draw);

  /* Admin actions: a POST to the API with the session cookie (SameSite=Strict) and the X-Cloudmeter-Action header,
     which no form can send and no other origin's script without a CORS preflight the API never grants. */
  var flash = document.getElementById("flash");
  function say(text, failed) {
    if (!flash) return;
    flash.textContent = text;
    flash.className = failed ? "flash error" : "flash";
    flash.hidden = false;
  }
  document.querySelectorAll("button[data-action]").forEach(function (button) {
    button.addEventListener("click", function () {
      var url = button.getAttribute("data-action");
      var what = button.getAttribute("data-what") || url;
      button.disabled = true;
      fetch(url, {
        method: "POST",
        credentials: "same-origin",
        headers: { "X-Cloudmeter-Action": "1", Accept: "application/json" },
      }).then(function (response) {
        return response.json().catch(function () { return {}; }).then(function (body) {
          if (!response.ok) {
            var detail = typeof body.detail === "string" ? body.detail : response.statusText;
            say(what + ": failed (" + response.status + "): " + detail, true);
            button.disabled = false;
            return;
          }
          say(what + ": done" + (body.message ? " (" + body.message + ")" : "") + "; reloading");
          window.setTimeout(function () { window.location.reload(); }, 600);
        });
      }).catch(function (error) {
        say(what + ": failed: " + error, true);
        button.disabled = false;
      });
    });
  });
})();
