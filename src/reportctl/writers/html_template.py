"""The stylesheet and chart script of the HTML report, kept apart from the code that writes the markup."""

from __future__ import annotations

STYLESHEET = """
:root {
  --accent: #0072b2;
  --ink: #1f2933;
  --muted: #616e7c;
  --line: #e4e7eb;
  --zebra: #f7f8fa;
  --panel: #ffffff;
  --page: #f4f5f7;
  color-scheme: light;
}
*, *::before, *::after { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; font-size: 15px; }
body {
  margin: 0;
  background: var(--page);
  color: var(--ink);
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Noto Sans", sans-serif;
  line-height: 1.5;
}
.report { max-width: 1200px; margin: 0 auto; padding: 32px 24px 48px; }
.report-header {
  border-top: 4px solid var(--accent);
  background: var(--panel);
  border-radius: 6px;
  padding: 24px 28px;
  margin-bottom: 24px;
  box-shadow: 0 1px 2px rgba(16, 24, 40, 0.06);
}
.report-header h1 { margin: 0 0 4px; font-size: 1.75rem; line-height: 1.25; font-weight: 650; }
.report-header .logo { float: right; max-height: 48px; max-width: 180px; margin: 0 0 8px 16px; }
.description { margin: 0 0 12px; color: var(--muted); max-width: 75ch; }
.parameters {
  display: flex;
  flex-wrap: wrap;
  gap: 8px 28px;
  margin: 16px 0 0;
  padding: 0;
}
.parameters div { min-width: 0; }
.parameters dt {
  font-size: 0.75rem;
  text-transform: uppercase;
  letter-spacing: 0.04em;
  color: var(--muted);
}
.parameters dd { margin: 0; font-weight: 550; overflow-wrap: anywhere; }
.generated { margin: 16px 0 0; font-size: 0.8125rem; color: var(--muted); }
.block {
  background: var(--panel);
  border-radius: 6px;
  padding: 20px 28px 24px;
  margin-bottom: 24px;
  box-shadow: 0 1px 2px rgba(16, 24, 40, 0.06);
}
.block > h2 { margin: 0 0 14px; font-size: 1.125rem; font-weight: 620; line-height: 1.3; }
.prose { max-width: 80ch; overflow-wrap: break-word; }
.prose > :first-child { margin-top: 0; }
.prose > :last-child { margin-bottom: 0; }
.prose a, .report-footer a { color: var(--accent); }
.prose code {
  font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace;
  font-size: 0.875em;
  background: var(--zebra);
  padding: 0.1em 0.3em;
  border-radius: 3px;
}
.prose pre { background: var(--zebra); padding: 12px; border-radius: 4px; overflow-x: auto; }
.prose pre code { background: none; padding: 0; }
.prose blockquote { margin: 0; padding-left: 12px; border-left: 3px solid var(--line); color: var(--muted); }
/* a section that could not be rendered (on_error: placeholder): a callout a reader cannot miss */
.block-failed .prose { background: #fff7ed; border-left: 4px solid #c2410c; padding: 10px 14px; border-radius: 4px; }
.prose table { border-collapse: collapse; }
.prose th, .prose td { border: 1px solid var(--line); padding: 4px 8px; }
.kpi-grid {
  display: grid;
  grid-template-columns: repeat(auto-fill, minmax(min(100%, 200px), 1fr));
  gap: 16px;
}
.kpi {
  border: 1px solid var(--line);
  border-left: 3px solid var(--accent);
  border-radius: 4px;
  padding: 12px 16px;
  min-width: 0;
}
.kpi-label { font-size: 0.8125rem; color: var(--muted); overflow-wrap: break-word; }
.kpi-value {
  font-size: 1.625rem;
  font-weight: 650;
  line-height: 1.3;
  font-variant-numeric: tabular-nums;
  overflow-wrap: break-word;
}
.kpi-value.missing { color: var(--muted); }
.kpi-description { font-size: 0.8125rem; color: var(--muted); margin-top: 2px; }
.table-wrap {
  overflow: auto;
  max-height: min(80vh, 720px);
  border: 1px solid var(--line);
  border-radius: 4px;
}
table.data { border-collapse: separate; border-spacing: 0; width: max-content; min-width: 100%; font-size: 0.875rem; }
table.data th, table.data td {
  padding: 6px 12px;
  text-align: left;
  vertical-align: top;
  border-bottom: 1px solid var(--line);
  white-space: nowrap;
}
table.data th {
  position: sticky;
  top: 0;
  z-index: 1;
  background: #eef0f3;
  font-weight: 600;
  color: var(--ink);
  border-bottom: 1px solid #cbd2d9;
}
table.data td.text { white-space: pre-wrap; min-width: 12ch; max-width: 48ch; }
table.data .num { text-align: right; font-variant-numeric: tabular-nums; }
table.data tbody tr:nth-child(even) td { background: var(--zebra); }
table.data tbody tr:last-child td { border-bottom: none; }
table.data tbody tr:hover td { background: #e3f0f8; }
.note, .empty { margin: 10px 0 0; font-size: 0.8125rem; color: var(--muted); }
.empty { margin: 0; padding: 16px; border: 1px dashed var(--line); border-radius: 4px; text-align: center; }
.chart { width: 100%; height: 450px; }
.chart-unavailable { display: flex; align-items: center; justify-content: center; color: var(--muted); }
.report-footer { font-size: 0.75rem; color: var(--muted); text-align: center; overflow-wrap: anywhere; }
@media (max-width: 640px) {
  html { font-size: 14px; }
  .report { padding: 12px 8px 32px; }
  .report-header, .block { padding: 16px; margin-bottom: 12px; }
  .report-header h1 { font-size: 1.375rem; }
  .report-header .logo { max-height: 32px; max-width: 120px; }
  .kpi-grid { grid-template-columns: repeat(auto-fill, minmax(min(100%, 150px), 1fr)); gap: 10px; }
  .kpi { padding: 10px 12px; }
  .kpi-value { font-size: 1.25rem; }
  .chart { height: 420px; }
}
@media print {
  @page { margin: 15mm 12mm; }
  html { font-size: 10pt; }
  body { background: #fff; }
  .report { max-width: none; padding: 0; }
  .report-header, .block { box-shadow: none; border-radius: 0; padding: 0; margin-bottom: 8mm; }
  .report-header { border-top: none; border-bottom: 2px solid var(--accent); padding-bottom: 4mm; }
  .block > h2 { break-after: avoid; page-break-after: avoid; }
  .table-wrap { overflow: visible; max-height: none; border: none; }
  table.data th { position: static; }
  table.data thead { display: table-header-group; }
  table.data tr, .kpi, .chart { break-inside: avoid; page-break-inside: avoid; }
  table.data tbody tr:hover td { background: inherit; }
  .modebar-container { display: none; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
"""

CHART_SCRIPT = """
(function () {
  var config = {responsive: true, displaylogo: false};
  var specs = document.querySelectorAll("script.chart-spec");
  for (var i = 0; i < specs.length; i++) {
    var figure = JSON.parse(specs[i].textContent);
    // the mode bar sits in a top margin of its own, above the plot and the legend, never over them
    var margin = figure.layout.margin || {};
    figure.layout.margin = Object.assign({}, margin, {t: Math.max(margin.t || 0, 44)});
    Plotly.newPlot(specs[i].getAttribute("data-chart"), figure.data, figure.layout, config);
  }
})();
"""

LOADER_SCRIPT = (
    """
(function () {
  var holder = document.getElementById("plotly-js");
  var charts = document.querySelectorAll("div.chart");
  function unavailable(message) {
    for (var i = 0; i < charts.length; i++) {
      charts[i].className += " chart-unavailable";
      charts[i].textContent = message;
    }
  }
  if (typeof DecompressionStream === "undefined") {
    unavailable("This browser cannot show the charts; open the report in a current browser.");
    return;
  }
  var text = atob(holder.textContent);
  var bytes = new Uint8Array(text.length);
  for (var i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  var stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
  new Response(stream).text().then(function (code) {
    var script = document.createElement("script");
    script.textContent = code;
    document.head.appendChild(script);
"""
    + CHART_SCRIPT
    + """
  }).catch(function () { unavailable("The charts could not be loaded."); });
})();
"""
)
"""Inflates the inlined, gzipped plotly.js with the browser's DecompressionStream, then draws the charts."""
