"use strict";
// A small SVG line chart: rounds on x, one or more series on y, ticks, grid and axis labels.
// Every point is a <circle data-series=KEY data-round=R data-value=V> so tests can count and read them.

const SVG_NS = "http://www.w3.org/2000/svg";

function svgEl(name, attrs, parent) {
  const el = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  if (parent) parent.appendChild(el);
  return el;
}

function niceStep(span, count) {
  if (!(span > 0)) return 1;
  const raw = span / Math.max(1, count);
  const magnitude = Math.pow(10, Math.floor(Math.log10(raw)));
  const norm = raw / magnitude;
  return (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 5 ? 5 : 10) * magnitude;
}

function tickValues(lo, hi, step) {
  const out = [];
  const first = Math.ceil(lo / step - 1e-9);
  for (let i = first; i * step <= hi + step * 1e-9; i++) out.push(Number((i * step).toPrecision(12)));
  return out;
}

// [lo, hi, step] covering the values, widened to whole ticks.
function yScale(values, opts) {
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  if (opts.zero) lo = Math.min(0, lo);
  if (opts.atLeast !== undefined) hi = Math.max(hi, opts.atLeast);
  if (hi - lo <= Math.abs(hi) * 1e-9) {
    const pad = hi === 0 ? 1 : Math.abs(hi) * 0.1;
    lo = opts.zero ? Math.min(0, lo) : lo - pad;
    hi = hi + pad;
  }
  const step = opts.integer ? Math.max(1, niceStep(hi - lo, 4)) : niceStep(hi - lo, 4);
  return [Math.floor(lo / step + 1e-9) * step, Math.ceil(hi / step - 1e-9) * step, step];
}

/**
 * Draw `series` ([{key, name, cls, points: [{round, value}]}]) into the <svg> element `svg`.
 * opts: {format(v, exact) for y ticks and tooltips, yLabel, zero (y axis from 0), atLeast (y domain reaches it),
 * unit(maxAbs) (ticks at round multiples of it), integer (ticks at whole numbers of the unit at least)}.
 */
function lineChart(svg, series, opts) {
  const width = Math.max(240, Math.round(svg.clientWidth || 600));
  const height = Math.max(160, Math.round(svg.clientHeight || 220));
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const all = series.flatMap((s) => s.points);
  if (all.length === 0) {
    svgEl("text", { x: width / 2, y: height / 2, "text-anchor": "middle", class: "empty" }, svg).textContent = "no rounds yet";
    return;
  }
  const m = { left: 62, right: 14, top: 10, bottom: 36 };
  const plotW = width - m.left - m.right;
  const plotH = height - m.top - m.bottom;

  const rounds = all.map((p) => p.round);
  const rMin = Math.min(...rounds);
  const rMax = Math.max(...rounds);
  const xPad = Math.max(0.5, (rMax - rMin) * 0.03);
  const x0 = rMin - xPad;
  const x1 = rMax + xPad;
  // opts.unit(maxAbs): a scale the ticks are round numbers of (1024**k for bytes); 1 by default
  const unit = opts.unit ? opts.unit(Math.max(...all.map((p) => Math.abs(p.value)))) : 1;
  const [y0, y1, yStep] = yScale(all.map((p) => p.value / unit), opts).map((v) => v * unit);
  const sx = (r) => m.left + ((r - x0) / (x1 - x0)) * plotW;
  const sy = (v) => m.top + (1 - (v - y0) / (y1 - y0)) * plotH;

  const grid = svgEl("g", { class: "axis" }, svg);
  for (const v of tickValues(y0, y1, yStep)) {
    const y = sy(v);
    svgEl("line", { x1: m.left, x2: m.left + plotW, y1: y, y2: y, class: "gridline" }, grid);
    svgEl("text", { x: m.left - 6, y: y + 4, "text-anchor": "end" }, grid).textContent = opts.format(v);
  }
  const xStep = Math.max(1, Math.round(niceStep(rMax - rMin, Math.max(2, Math.floor(plotW / 60)))));
  for (const r of tickValues(rMin, rMax, xStep)) {
    const x = sx(r);
    svgEl("line", { x1: x, x2: x, y1: m.top + plotH, y2: m.top + plotH + 5 }, grid);
    svgEl("text", { x, y: m.top + plotH + 17, "text-anchor": "middle" }, grid).textContent = String(r);
  }
  svgEl("line", { x1: m.left, x2: m.left + plotW, y1: m.top + plotH, y2: m.top + plotH }, grid);
  svgEl("line", { x1: m.left, x2: m.left, y1: m.top, y2: m.top + plotH }, grid);
  svgEl("text", { x: m.left + plotW / 2, y: height - 3, "text-anchor": "middle", class: "axis-label" }, svg).textContent = "round";
  const yLabelY = m.top + plotH / 2;
  svgEl("text", { x: 12, y: yLabelY, transform: `rotate(-90 12 ${yLabelY})`, "text-anchor": "middle", class: "axis-label" }, svg).textContent =
    opts.yLabel;

  const radius = all.length > 80 ? 2 : 3.5;
  for (const s of series) {
    const g = svgEl("g", { class: "series", "data-series": s.key }, svg);
    const pts = s.points.slice().sort((a, b) => a.round - b.round);
    if (pts.length > 1) svgEl("polyline", { class: s.cls, points: pts.map((p) => `${sx(p.round).toFixed(1)},${sy(p.value).toFixed(1)}`).join(" ") }, g);
    for (const p of pts) {
      const c = svgEl("circle", { class: s.cls, cx: sx(p.round).toFixed(1), cy: sy(p.value).toFixed(1), r: radius, "data-series": s.key, "data-round": p.round, "data-value": p.value }, g);
      svgEl("title", {}, c).textContent = `round ${p.round} · ${s.name} ${opts.format(p.value, true)}`;
    }
  }
}

function legend(el, series) {
  el.replaceChildren(
    ...series.map((s) => {
      const span = document.createElement("span");
      span.className = s.cls;
      span.textContent = s.name;
      return span;
    }),
  );
}
