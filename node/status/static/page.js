"use strict";
// The node's status page: polls ./status every 2 s and draws it. Read-only; builds the DOM with
// textContent only (hotkeys and verdicts come from other peers), never innerHTML.

const POLL_MS = 2000;
const TABLE_ROWS = 16;
const INT = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
const STAKE = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });

const fmt = {
  loss: (v) => v.toFixed(4),
  int: (v) => INT.format(v),
  pct: (v) => `${(v * 100).toFixed(1)}%`,
  bytes(v) {
    if (Math.abs(v) < 1024) return `${INT.format(v)} B`;
    const units = ["KiB", "MiB", "GiB", "TiB"];
    let u = -1;
    do {
      v /= 1024;
      u++;
    } while (Math.abs(v) >= 1024 && u < units.length - 1);
    return `${v.toFixed(1)} ${units[u]}`;
  },
  age(s) {
    if (s < 90) return `${Math.round(s)} s ago`;
    if (s < 5400) return `${Math.round(s / 60)} min ago`;
    return `${(s / 3600).toFixed(1)} h ago`;
  },
};

const HEALTH = {
  ok: ["good", "In sync"],
  starting: ["warn", "Starting"],
  stalled: ["bad", "Stalled"],
  out_of_sync: ["bad", "Out of sync"],
};

const $ = (id) => document.getElementById(id);
const isNum = (v) => typeof v === "number" && Number.isFinite(v);
const short = (key) => (typeof key === "string" && key.length > 14 ? `${key.slice(0, 6)}…${key.slice(-4)}` : key || "–");
const uploaded = (r) => (isNum(r.upload_payload_bytes) || isNum(r.upload_state_bytes) ? (r.upload_payload_bytes || 0) + (r.upload_state_bytes || 0) : null);

function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

function setText(id, text, title) {
  const e = $(id);
  e.textContent = text;
  if (title !== undefined) e.title = title;
  return e;
}

function pill(text, cls) {
  return el("span", { class: `pill ${cls || ""}` }, text);
}

function renderHeader(s) {
  const id = s.identity || {};
  setText("run-name", id.run_name || "unnamed run");
  setText("hotkey", short(id.hotkey), id.hotkey || "");
  setText("peer-id", short(id.peer_id), id.peer_id || "");
  setText("run-id", (id.run_id || "").slice(0, 16), id.run_id || "");
  document.title = `r${s.round} ${(HEALTH[s.health && s.health.status] || ["", "?"])[1]} · ${id.run_name || "gradswarm"}`;
  const round = setText("round", isNum(s.round) ? fmt.int(s.round) : "–");
  round.dataset.value = String(s.round);
  const phase = setText("phase", s.phase || "–");
  phase.className = `pill ${s.phase === "waiting" ? "warn" : ""}`;
  setText("uid", isNum(id.uid) ? String(id.uid) : "not registered").dataset.value = String(id.uid);
  $("permit").replaceChildren(id.validator_permit ? pill("validator", "good") : pill("no permit"));
  const stake = setText("stake", isNum(id.stake) ? STAKE.format(id.stake) : "–");
  stake.dataset.value = String(id.stake);
  const peers = s.peers || {};
  setText("peers-connected", isNum(peers.connected) ? fmt.int(peers.connected) : "–").dataset.value = String(peers.connected);
  setText("peers-bound", isNum(peers.bound) ? fmt.int(peers.bound) : "–").dataset.value = String(peers.bound);
  setText("round-seconds", isNum(s.round_seconds) ? `${s.round_seconds} s` : "–");
}

function renderHealth(h, reachable) {
  const badge = $("health");
  let cls, text, detail;
  if (!reachable) {
    [cls, text] = ["bad", "Unreachable"];
    detail = lastOk ? `no answer from the node since ${new Date(lastOk).toLocaleTimeString()}` : "no answer from the node";
  } else {
    [cls, text] = HEALTH[h.status] || ["warn", h.status || "unknown"];
    const age = isNum(h.last_round_end_age_seconds) ? fmt.age(h.last_round_end_age_seconds) : null;
    if (h.status === "starting") detail = "waiting for the first round to finish";
    else if (h.status === "stalled") detail = age ? `no round finished since ${age.replace(" ago", "")}` : "no round finished";
    else if (h.status === "out_of_sync") detail = `round ${h.round}: our state differs from the manifest's`;
    else detail = isNum(h.round) ? `round ${h.round} finished ${age || ""}` : "";
  }
  badge.className = `badge ${cls}`;
  badge.dataset.status = reachable ? h.status : "unreachable";
  setText("health-text", text);
  setText("health-detail", detail);
  if (reachable) setText("last-end", isNum(h.last_round_end_age_seconds) ? fmt.age(h.last_round_end_age_seconds) : "not yet");
}

function series(reports, key, name, cls, value) {
  const points = [];
  for (const r of reports) {
    const v = value ? value(r) : r[key];
    if (isNum(v)) points.push({ round: r.round, value: v });
  }
  return { key, name, cls, points };
}

function renderCharts(reports) {
  const loss = [series(reports, "train_loss", "train loss", "s1"), series(reports, "eval_loss", "eval loss", "s2")];
  legend($("legend-loss"), loss);
  lineChart($("chart-loss"), loss, { format: (v, exact) => (exact ? fmt.loss(v) : String(Number(v.toPrecision(6)))), yLabel: "loss" });
  const upload = [series(reports, "upload_bytes", "payload + state", "s3", uploaded)];
  legend($("legend-upload"), upload);
  const binary = (max) => Math.pow(1024, Math.max(0, Math.min(4, Math.floor(Math.log(Math.max(1, max)) / Math.log(1024)))));
  lineChart($("chart-upload"), upload, { format: fmt.bytes, yLabel: "uploaded", zero: true, unit: binary, integer: true });
  const util = [series(reports, "compute_utilization", "inner steps / round", "s4")];
  legend($("legend-util"), util);
  lineChart($("chart-util"), util, { format: (v) => `${Math.round(v * 100)}%`, yLabel: "utilization", zero: true, atLeast: 1 });
}

function verdictClass(v) {
  return v === "pass" ? "pass" : v === "fail" ? "fail" : "other";
}

// [{who, verdicts: [{round, verdict}]}], most recently judged first.
function group(items) {
  const by = new Map();
  for (const it of items) {
    if (!by.has(it.who)) by.set(it.who, []);
    by.get(it.who).push(it);
  }
  const groups = [...by.entries()].map(([who, vs]) => ({ who, verdicts: vs.sort((a, b) => a.round - b.round) }));
  return groups.sort((a, b) => b.verdicts.at(-1).round - a.verdicts.at(-1).round || (a.who < b.who ? -1 : 1));
}

function renderVerdictList(ul, groups, empty) {
  if (groups.length === 0) {
    ul.replaceChildren(el("li", { class: "none" }, empty));
    return;
  }
  ul.replaceChildren(
    ...groups.slice(0, 16).map((g) => {
      const pass = g.verdicts.filter((v) => v.verdict === "pass").length;
      const fail = g.verdicts.filter((v) => v.verdict === "fail").length;
      const li = el("li", { "data-who": g.who, "data-pass": pass, "data-fail": fail });
      li.appendChild(el("span", { class: "who", title: g.who }, short(g.who)));
      const chips = el("span", { class: "chips" });
      for (const v of g.verdicts.slice(-12)) {
        chips.appendChild(el("span", { class: `chip ${verdictClass(v.verdict)}`, title: `round ${v.round}: ${v.verdict}`, "data-round": v.round }, `r${v.round}`));
      }
      li.appendChild(chips);
      li.appendChild(el("span", { class: "tally" }, `${pass} pass · ${fail} fail`));
      return li;
    }),
  );
}

function renderVerdicts(s) {
  const given = (s.reports || []).flatMap((r) => (r.verdicts || []).map(([round, who, verdict]) => ({ round, who, verdict })));
  renderVerdictList($("verdicts-given"), group(given), "none yet: verdicts appear once this node checks others' contributions");
  const received = (s.verdicts_received || []).map((v) => ({ round: v.round, who: v.validator, verdict: v.verdict }));
  renderVerdictList($("verdicts-received"), group(received), "none published about this node yet");
}

function numCell(field, value, format) {
  const td = el("td", { class: "num", "data-field": field });
  if (isNum(value)) {
    td.dataset.value = String(value);
    td.textContent = format(value);
  } else td.textContent = "—";
  return td;
}

function flagCell(field, value, good) {
  const td = el("td", { "data-field": field, "data-value": String(value) }, value ? "yes" : "no");
  td.className = value === good ? "yes" : "no";
  return td;
}

function renderTable(s) {
  const me = (s.identity || {}).hotkey;
  const rows = (s.reports || []).slice(-TABLE_ROWS).reverse();
  const tbody = $("rounds").tBodies[0];
  if (rows.length === 0) {
    tbody.replaceChildren(el("tr", {}, ""));
    tbody.firstChild.appendChild(el("td", { colspan: 9, class: "none left" }, "no round finished yet"));
    return;
  }
  tbody.replaceChildren(
    ...rows.map((r) => {
      const tr = el("tr", { "data-round": r.round });
      tr.appendChild(numCell("round", r.round, fmt.int));
      tr.appendChild(numCell("train_loss", r.train_loss, fmt.loss));
      tr.appendChild(numCell("eval_loss", r.eval_loss, fmt.loss));
      tr.appendChild(numCell("manifest_entries", r.manifest_entries, fmt.int));
      tr.appendChild(flagCell("in_manifest", (r.manifest_hotkeys || []).includes(me), true));
      const up = numCell("upload_bytes", uploaded(r), fmt.bytes);
      up.title = `payload ${r.upload_payload_bytes || 0} B, state ${r.upload_state_bytes || 0} B`;
      tr.appendChild(up);
      tr.appendChild(numCell("compute_utilization", r.compute_utilization, fmt.pct));
      tr.appendChild(flagCell("in_sync", r.in_sync !== false, true));
      const verdicts = el("td", { class: "left", "data-field": "verdicts" });
      const counts = {};
      for (const [, , v] of r.verdicts || []) counts[v] = (counts[v] || 0) + 1;
      const order = (v) => (v === "pass" ? 0 : v === "fail" ? 1 : 2);
      const kinds = Object.keys(counts).sort((a, b) => order(a) - order(b) || (a < b ? -1 : 1));
      if (kinds.length === 0) verdicts.appendChild(el("span", { class: "muted" }, "—"));
      for (const v of kinds) verdicts.appendChild(el("span", { class: `chip ${verdictClass(v)}`, "data-verdict": v, "data-count": counts[v] }, `${counts[v]} ${v}`));
      tr.appendChild(verdicts);
      return tr;
    }),
  );
}

let last = null;
let lastOk = 0;

function render(s) {
  renderHeader(s);
  renderHealth(s.health || {}, true);
  renderCharts(s.reports || []);
  renderVerdicts(s);
  renderTable(s);
  setText("updated", `updated ${new Date(s.now * 1000).toLocaleTimeString()}`);
  $("footer").classList.remove("stale");
  document.body.dataset.statusNow = String(s.now);
  document.body.dataset.reports = String((s.reports || []).length);
}

async function poll() {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), 5000);
  let status = null;
  try {
    const response = await fetch("status", { cache: "no-store", signal: abort.signal, headers: { Accept: "application/json" } });
    if (!response.ok && response.status !== 503) throw new Error(`HTTP ${response.status}`);
    status = await response.json();
  } catch (e) {
    status = null;
  } finally {
    clearTimeout(timer);
    setTimeout(poll, POLL_MS);
  }
  if (status === null) {
    renderHealth({}, false);
    $("footer").classList.add("stale");
    return;
  }
  last = status;
  lastOk = Date.now();
  render(status); // outside the try: a bug here shows in the console, not as "Unreachable"
}

let resizeQueued = false;
window.addEventListener("resize", () => {
  if (resizeQueued || !last) return;
  resizeQueued = true;
  requestAnimationFrame(() => {
    resizeQueued = false;
    renderCharts(last.reports || []);
  });
});

poll();
