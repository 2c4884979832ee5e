// StreamTally dashboard: reads the collector's report API on the same origin (SPEC
// "Collector query API") and draws it. No framework and nothing external: the page is
// embedded in the collector binary. Every value from the API is put in the page as text
// (never as HTML): stream names, user-agents and referers come from clients.
"use strict";

(() => {
  const TOKEN_KEY = "streamtally.readToken";
  const PAGE_SIZE = 50;
  const PRESETS = {
    "1h": { span: 3600e3, bucket: "1m", bucketMs: 60e3 },
    "1d": { span: 86400e3, bucket: "5m", bucketMs: 300e3 },
    "1w": { span: 7 * 86400e3, bucket: "1h", bucketMs: 3600e3 },
  };
  // Preferred columns per Sessions tab (Retroview's); any other field the API returns follows.
  const COLUMNS = {
    all: ["stream", "type", "protocol", "host", "country", "client_ip", "device_type", "browser", "user_id", "bytes_out", "started_at", "viewtime"],
    stream: ["stream", "bytes_out", "bytes_in", "views", "sessions", "viewtime"],
    server: ["host", "server_id", "bytes_out", "bytes_in", "views", "sessions", "viewtime"],
    user: ["user_id", "views", "sessions", "country", "client_ip", "bytes_out", "viewtime", "user_agent", "referer", "last_started_at"],
    unique: ["day", "stream", "protocol", "country", "client_ip", "bytes_out", "started_at", "viewtime", "sessions", "user_agent", "referer", "user_id"],
  };
  const DEVICE_LABELS = {
    desktop: "Desktop", mobile: "Mobile", tablet: "Tablet", tv: "TV", console: "Console", bot: "Bot", unknown: "Unknown",
  };
  const HIDDEN = new Set(["tags", "token", "session_id", "seq", "updated_at"]);
  const LABELS = {
    stream: "Stream", type: "Type", protocol: "Protocol", host: "Host", country: "Country", client_ip: "IP",
    device_type: "Device", os: "OS", browser: "Browser", user_id: "User ID", bytes_out: "Traffic out",
    bytes_in: "Traffic in", started_at: "Created", ended_at: "Ended", viewtime: "View time", views: "Views",
    sessions: "Sessions", server_id: "Server ID", user_agent: "User-Agent", referer: "Referer",
    last_started_at: "Last session", day: "Day", state: "State", end_reason: "End reason",
    referer_domain: "Referer domain",
  };

  const state = {
    preset: "1d",
    group: "all",
    order: null,          // null: the API's default order for the tab
    offset: 0,
    filters: {},
    askingForToken: null, // a pending Promise while the token dialog is open
  };

  // ---------- small helpers ----------

  const $ = (selector, root = document) => root.querySelector(selector);
  const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null) continue;
      if (k === "class") node.className = v;
      else node.setAttribute(k, String(v));
    }
    for (const child of children) {
      if (child === undefined || child === null) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function svg(tag, attrs = {}, ...children) {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    return node;
  }

  function formatBytes(n) {
    const value = Number(n) || 0;
    const units = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let i = 0;
    let v = Math.abs(value);
    while (v >= 1000 && i < units.length - 1) { v /= 1000; i++; }
    const digits = i === 0 ? 0 : v >= 100 ? 0 : v >= 10 ? 1 : 2;
    return (value < 0 ? "-" : "") + v.toFixed(digits) + " " + units[i];
  }

  function formatDuration(seconds) {
    let s = Math.round(Number(seconds) || 0);
    const d = Math.floor(s / 86400); s -= d * 86400;
    const h = Math.floor(s / 3600); s -= h * 3600;
    const m = Math.floor(s / 60); s -= m * 60;
    if (d > 0) return `${d}d ${h}h ${String(m).padStart(2, "0")}m`;
    if (h > 0) return `${h}h ${String(m).padStart(2, "0")}m`;
    if (m > 0) return `${m}m ${String(s).padStart(2, "0")}s`;
    return `${s}s`;
  }

  const integer = new Intl.NumberFormat("en-US");
  function formatCount(n) { return integer.format(Number(n) || 0); }

  function formatTime(ms, withSeconds = false) {
    if (ms === null || ms === undefined) return "–";
    const d = new Date(Number(ms));
    const pad = (x) => String(x).padStart(2, "0");
    const base = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
    return withSeconds ? `${base}:${pad(d.getSeconds())}` : base;
  }

  let regionNames = null;
  try { regionNames = new Intl.DisplayNames(["en"], { type: "region" }); } catch (e) { regionNames = null; }
  function countryLabel(code) {
    if (!code || code === "unknown") return "Unknown";
    let name = null;
    try { name = regionNames ? regionNames.of(code) : null; } catch (e) { name = null; }
    return name && name !== code ? `${name} (${code})` : code;
  }

  function currentMonth() {
    const d = new Date();
    return `${d.getUTCFullYear()}-${String(d.getUTCMonth() + 1).padStart(2, "0")}`;
  }

  function setStatus(text) { $("#status").textContent = text || ""; }

  // A table cell that shows a readable figure and keeps the exact one in data-value/title.
  function valueCell(field, value) {
    if (value === null || value === undefined) return el("td", {}, "–");
    if (field === "bytes_out" || field === "bytes_in") {
      return el("td", { class: "num", "data-value": value, title: `${formatCount(value)} bytes` }, formatBytes(value));
    }
    if (field === "viewtime") {
      return el("td", { class: "num", "data-value": value, title: `${formatCount(value)} s` }, formatDuration(value));
    }
    if (field === "started_at" || field === "ended_at" || field === "last_started_at" || field === "updated_at") {
      return el("td", { class: "num", "data-value": value }, formatTime(value, true));
    }
    if (field === "day") return el("td", { class: "num", "data-value": value }, formatTime(value).slice(0, 10));
    if (field === "views" || field === "sessions") return el("td", { class: "num", "data-value": value }, formatCount(value));
    if (field === "country") return el("td", { title: value }, countryLabel(value));
    const long = field === "stream" || field === "user_agent" || field === "referer" || field === "host";
    return el("td", { class: long ? "text" : null }, typeof value === "object" ? JSON.stringify(value) : value);
  }

  // ---------- API access with the read token ----------

  function authHeaders() {
    const token = sessionStorage.getItem(TOKEN_KEY);
    return token ? { Authorization: `Bearer ${token}` } : {};
  }

  class AuthNeeded extends Error {}

  async function api(path) {
    const response = await fetch(path, { headers: { Accept: "application/json", ...authHeaders() } });
    if (response.status === 401) {
      askForToken();
      throw new AuthNeeded("read token needed");
    }
    const text = await response.text();
    let body = null;
    try { body = text ? JSON.parse(text) : null; } catch (e) { body = null; }
    if (!response.ok) {
      const message = body && body.error ? body.error : `HTTP ${response.status}`;
      throw new Error(`${path.split("?")[0]}: ${message}`);
    }
    return body;
  }

  function askForToken() {
    if (state.askingForToken) return state.askingForToken;
    const dialog = $("#token-dialog");
    state.askingForToken = new Promise((resolve) => {
      const done = () => { state.askingForToken = null; resolve(); };
      dialog.addEventListener("close", done, { once: true });
    });
    $("#token-input").value = "";
    if (!dialog.open) {
      if (typeof dialog.showModal === "function") dialog.showModal(); else dialog.setAttribute("open", "");
    }
    setStatus("This collector needs a read token.");
    return state.askingForToken;
  }

  function wireTokenDialog() {
    const dialog = $("#token-dialog");
    $("#token-form").addEventListener("submit", () => {
      const token = $("#token-input").value.trim();
      if (token) sessionStorage.setItem(TOKEN_KEY, token);
      // The dialog closes itself (method="dialog"); then reload everything with the token.
      setTimeout(refreshAll, 0);
    });
    $("#token-cancel").addEventListener("click", () => dialog.close());
    $("#token-button").addEventListener("click", () => askForToken());
  }

  // A token may also arrive in the URL fragment (#token=…), e.g. from a bookmark; it is moved to
  // sessionStorage and removed from the address bar at once (a fragment is never sent to servers).
  function takeTokenFromFragment() {
    const params = new URLSearchParams(location.hash.slice(1));
    const token = params.get("token");
    if (!token) return;
    sessionStorage.setItem(TOKEN_KEY, token);
    params.delete("token");
    const rest = params.toString();
    history.replaceState(null, "", location.pathname + location.search + (rest ? `#${rest}` : ""));
  }

  // The view (Sessions tab, filters, order, chart range, month) lives in the fragment too, so a
  // filtered view can be bookmarked or sent to a colleague: #group=user&protocol=hls&preset=1w.
  const FILTER_NAMES = ["from", "to", "stream", "user_id", "ip", "user_agent", "min_duration", "max_duration", "protocol", "server"];

  function viewFromFragment() {
    const params = new URLSearchParams(location.hash.slice(1));
    if (COLUMNS[params.get("group")]) state.group = params.get("group");
    if (params.get("order")) state.order = params.get("order");
    if (PRESETS[params.get("preset")]) state.preset = params.get("preset");
    if (/^\d{4}-\d{2}$/.test(params.get("month") || "")) $("#top-month").value = params.get("month");
    const form = $("#filters");
    for (const name of FILTER_NAMES) {
      const value = params.get(name);
      if (!value || name === "server") continue;
      const input = form.elements.namedItem(name);
      if (name === "from" || name === "to") {
        const d = new Date(/^\d+$/.test(value) ? Number(value) : value);
        if (Number.isNaN(d.getTime())) continue;
        const pad = (x) => String(x).padStart(2, "0");
        input.value = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
      } else if (input) {
        input.value = value;
      }
    }
    state.filters = readFilters();
    // Exact times and the server list are taken as given (the form shows seconds; the servers'
    // checkboxes appear later).
    for (const name of ["from", "to"]) if (/^\d+$/.test(params.get(name) || "")) state.filters[name] = params.get(name);
    if (params.get("server")) state.filters.server = params.get("server");
    $$(".tabs button").forEach((b) => b.classList.toggle("active", b.dataset.group === state.group));
    $$(".presets button").forEach((b) => b.classList.toggle("active", b.dataset.preset === state.preset));
  }

  function viewToFragment() {
    const params = new URLSearchParams();
    if (state.group !== "all") params.set("group", state.group);
    if (state.order) params.set("order", state.order);
    if (state.preset !== "1d") params.set("preset", state.preset);
    if ($("#top-month").value && $("#top-month").value !== currentMonth()) params.set("month", $("#top-month").value);
    for (const name of FILTER_NAMES) if (state.filters[name]) params.set(name, state.filters[name]);
    const hash = params.toString();
    history.replaceState(null, "", location.pathname + location.search + (hash ? `#${hash}` : ""));
  }

  async function guarded(section, work) {
    try {
      await work();
    } catch (e) {
      if (e instanceof AuthNeeded) return;
      setStatus(`${section}: ${e.message}`);
      console.error(section, e);
    }
  }

  // ---------- month to date ----------

  async function loadUsage() {
    const data = await api("/v1/usage/month-to-date");
    const at = new Date(Number(data.at));
    $("#usage-period").textContent = `1 ${at.toLocaleString("en", { month: "long", timeZone: "UTC" })} – ${formatTime(data.at)} compared with the same days of last month`;
    for (const card of $$("#usage-cards .card")) {
      const kind = card.dataset.kind;
      const now = data.current ? data.current[kind] : 0;
      const before = data.previous_same_period ? data.previous_same_period[kind] : 0;
      const lastMonth = data.previous_month ? data.previous_month[kind] : 0;
      const change = data.change_pct ? data.change_pct[kind] : null;
      const big = $(".big", card);
      big.textContent = formatBytes(now);
      big.dataset.value = String(now);
      big.title = `${formatCount(now)} bytes`;
      const chip = $(".chip", card);
      if (change === null || change === undefined) {
        chip.className = "chip flat";
        chip.textContent = before ? "±0%" : "new";
      } else {
        const pct = Number(change);
        chip.className = "chip " + (pct > 0.05 ? "up" : pct < -0.05 ? "down" : "flat");
        chip.textContent = `${pct > 0 ? "▲" : pct < 0 ? "▼" : "●"} ${Math.abs(pct).toFixed(2)}%`;
      }
      $(".detail", card).textContent = `last month to date ${formatBytes(before)} · all of last month ${formatBytes(lastMonth)}`;
    }
  }

  // Daily usage (playout + ingest) of this month against last month, day by day (nanoStream's
  // usage trend: current month orange, previous blue).
  async function loadUsageTrend() {
    const now = new Date();
    const thisMonth = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1);
    const lastMonth = Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 1, 1);
    const data = await api(`/v1/timeseries?dimensions=type&metrics=bytes_out,bytes_in&bucket=1d&from=${lastMonth}&to=${now.getTime()}`);
    const out = groupByType("bytes_out", data);
    const inn = groupByType("bytes_in", data);
    const perDay = new Map();  // bucket start -> playout + ingest bytes
    for (const p of out.play || []) perDay.set(Number(p.timestamp), (perDay.get(Number(p.timestamp)) || 0) + Number(p.value));
    for (const p of inn.publish || []) perDay.set(Number(p.timestamp), (perDay.get(Number(p.timestamp)) || 0) + Number(p.value));
    const day = 86400e3;
    const current = [], previous = [];
    for (let d = 0; d < 31; d++) {
      const a = thisMonth + d * day, b = lastMonth + d * day;
      current.push(a < now.getTime() && new Date(a).getUTCMonth() === now.getUTCMonth() ? perDay.get(a) || 0 : null);
      previous.push(b < thisMonth ? perDay.get(b) || 0 : null);
    }
    barChart($("#usage-trend"), current, previous);
  }

  function barChart(container, current, previous) {
    container.replaceChildren();
    const W = 1000, H = 160, left = 70, right = 12, top = 10, bottom = 24;
    const max = Math.max(1, ...current.filter((v) => v !== null), ...previous.filter((v) => v !== null));
    const niceMax = niceCeil(max);
    const y = (v) => top + (1 - v / niceMax) * (H - top - bottom);
    const slot = (W - left - right) / 31;
    const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img" });
    for (let i = 0; i <= 2; i++) {
      const v = (niceMax * i) / 2;
      root.append(svg("line", { class: i === 0 ? "axis" : "grid", x1: left, x2: W - right, y1: y(v), y2: y(v) }));
      root.append(svg("text", { x: left - 8, y: y(v) + 4, "text-anchor": "end" }, formatBytes(v)));
    }
    for (let d = 0; d < 31; d++) {
      const x0 = left + d * slot;
      const bars = [[previous[d], "bar-previous", "last month", 0.12], [current[d], "bar-current", "this month", 0.5]];
      for (const [value, cls, label, offset] of bars) {
        if (value === null) continue;
        root.append(svg("rect", { class: cls, x: x0 + slot * offset, y: y(value), width: slot * 0.38, height: Math.max(0, y(0) - y(value)), "data-day": d + 1, "data-value": value },
          svg("title", {}, `Day ${d + 1}, ${label}: ${formatBytes(value)}`)));
      }
      if (d % 5 === 0) root.append(svg("text", { x: x0 + slot / 2, y: H - 6, "text-anchor": "middle" }, d + 1));
    }
    container.append(root);
    container.append(el("div", { class: "legend" },
      el("span", {}, el("i", { style: "background:#f07b1a" }), "this month"),
      el("span", {}, el("i", { style: "background:#2f6fde" }), "last month")));
  }

  // ---------- top 10 ----------

  async function loadTop() {
    const month = $("#top-month").value || currentMonth();
    await Promise.all($$(".top").map(async (box) => {
      const { of, by } = box.dataset;
      const data = await api(`/v1/top?by=${by}&of=${of}&month=${encodeURIComponent(month)}&limit=10`);
      const body = $("tbody", box);
      body.replaceChildren();
      const rows = (data && data.rows) || [];
      if (rows.length === 0) body.append(el("tr", {}, el("td", { class: "empty", colspan: 3 }, "No sessions this month")));
      rows.forEach((row, i) => {
        const cell = valueCell(by, row.value);
        cell.className = "value";
        body.append(el("tr", {}, el("td", { class: "rank" }, i + 1), el("td", { class: "key" }, row.key), cell));
      });
    }));
  }

  // ---------- charts ----------

  function groupByType(metric, data) {
    // {"<metric>":{"data":[{"dimensions":{"type":"play"},"points":[…]}]}} -> {play: points, publish: points}
    const out = {};
    const groups = (data && data[metric] && data[metric].data) || [];
    for (const g of groups) {
      const type = (g.dimensions && g.dimensions.type) || "all";
      out[type] = g.points || [];
    }
    return out;
  }

  function lineChart(container, series, { from, to, bucketMs, format }) {
    container.replaceChildren();
    const W = 1000, H = 240, left = 70, right = 12, top = 12, bottom = 28;
    const x = (t) => left + ((t - from) / Math.max(1, to - from)) * (W - left - right);
    let max = 0;
    for (const s of series) for (const p of s.points) max = Math.max(max, Number(p.value) || 0);
    const niceMax = max <= 0 ? 1 : niceCeil(max);
    const y = (v) => top + (1 - v / niceMax) * (H - top - bottom);

    const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img" });
    for (let i = 0; i <= 4; i++) {
      const v = (niceMax * i) / 4;
      root.append(svg("line", { class: i === 0 ? "axis" : "grid", x1: left, x2: W - right, y1: y(v), y2: y(v) }));
      root.append(svg("text", { x: left - 8, y: y(v) + 4, "text-anchor": "end" }, format(v)));
    }
    const ticks = 6;
    for (let i = 0; i <= ticks; i++) {
      const t = from + ((to - from) * i) / ticks;
      const label = to - from > 2 * 86400e3 ? formatTime(t).slice(5, 16) : formatTime(t).slice(11, 16);
      root.append(svg("text", { x: x(t), y: H - 8, "text-anchor": i === 0 ? "start" : i === ticks ? "end" : "middle" }, label));
    }

    for (const s of series) {
      // Every bucket of the range gets a point; a bucket the API did not return had no value.
      const byTime = new Map(s.points.map((p) => [Number(p.timestamp), Number(p.value) || 0]));
      const start = Math.floor(from / bucketMs) * bucketMs;
      const coords = [];
      for (let t = start; t < to; t += bucketMs) coords.push([x(Math.max(t, from)), y(byTime.get(t) || 0)]);
      if (coords.length === 0) continue;
      const line = coords.map(([a, b]) => `${a.toFixed(1)},${b.toFixed(1)}`).join(" ");
      root.append(svg("polygon", { class: "area", fill: s.color, points: `${coords[0][0]},${y(0)} ${line} ${coords[coords.length - 1][0]},${y(0)}` }));
      root.append(svg("polyline", { class: "series", stroke: s.color, points: line, "data-series": s.name }));
    }

    // Hover targets: one column per bucket with a native tooltip of every series' value.
    const start = Math.floor(from / bucketMs) * bucketMs;
    for (let t = start; t < to; t += bucketMs) {
      const x0 = x(Math.max(t, from)), x1 = x(Math.min(t + bucketMs, to));
      const lines = series.map((s) => {
        const p = s.points.find((q) => Number(q.timestamp) === t);
        return `${s.name}: ${format(p ? Number(p.value) : 0)}`;
      });
      root.append(svg("rect", { class: "hover", x: x0, y: top, width: Math.max(1, x1 - x0), height: H - top - bottom, fill: "transparent" },
        svg("title", {}, `${formatTime(t)}\n${lines.join("\n")}`)));
    }
    container.append(root);
    container.append(el("div", { class: "legend" }, ...series.map((s) => el("span", {}, el("i", { style: `background:${s.color}` }), s.name))));
  }

  function niceCeil(v) {
    const exp = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * exp >= v) return m * exp;
    return 10 * exp;
  }

  async function loadCharts() {
    const preset = PRESETS[state.preset];
    const to = Date.now();
    const from = to - preset.span;
    const query = `dimensions=type&metrics=ccu,bytes_out,bytes_in&bucket=${preset.bucket}&from=${Math.floor(from)}&to=${Math.floor(to)}`;
    const data = await api(`/v1/timeseries?${query}`);
    const ccu = groupByType("ccu", data);
    const out = groupByType("bytes_out", data);
    const inn = groupByType("bytes_in", data);
    const opts = { from, to, bucketMs: preset.bucketMs };
    lineChart($("#ccu-chart"), [
      { name: "Viewers", color: "#f07b1a", points: ccu.play || [] },
      { name: "Publishers", color: "#2f6fde", points: ccu.publish || [] },
    ], { ...opts, format: (v) => formatCount(Math.round(v)) });
    // Playout is what viewers received (bytes_out of play sessions); ingest what publishers sent.
    lineChart($("#bytes-chart"), [
      { name: "Playout", color: "#f07b1a", points: out.play || [] },
      { name: "Ingest", color: "#2f6fde", points: inn.publish || [] },
    ], { ...opts, format: formatBytes });
  }

  // ---------- audience ----------

  function barList(container, rows, label) {
    container.replaceChildren();
    if (rows.length === 0) { container.append(el("div", { class: "empty" }, "No views yet")); return; }
    const max = Math.max(...rows.map((r) => r.views), 1);
    for (const r of rows.slice(0, 12)) {
      container.append(el("div", { class: "bar-row", "data-key": r.key, "data-value": r.views },
        el("span", { class: "label", title: r.key }, label(r.key)),
        el("span", { class: "track" }, el("span", { class: "fill", style: `display:block;width:${(100 * r.views / max).toFixed(1)}%` })),
        el("span", { class: "count" }, formatCount(r.views))));
    }
  }

  async function loadAudience() {
    const load = async (dimension, container, label) => {
      const data = await api(`/v1/events?dimensions=${dimension}&metrics=views,viewtime&where=type==play`);
      const rows = ((data && data.data) || [])
        .map((g) => ({ key: (g.dimensions && g.dimensions[dimension]) || "unknown", views: Number(g.totals && g.totals.views) || 0 }))
        .filter((r) => r.views > 0)
        .sort((a, b) => b.views - a.views);
      barList(container, rows, label);
    };
    await Promise.all([
      load("country", $("#by-country"), countryLabel),
      load("device_type", $("#by-device"), (k) => DEVICE_LABELS[k] || k),
    ]);
  }

  // ---------- sessions ----------

  function sessionsQuery(extra = {}) {
    const params = new URLSearchParams();
    params.set("group", state.group);
    for (const [k, v] of Object.entries(state.filters)) if (v !== "") params.set(k, v);
    if (state.order) params.set("order", state.order);
    for (const [k, v] of Object.entries(extra)) params.set(k, v);
    return params;
  }

  function readFilters() {
    const form = $("#filters");
    const filters = {};
    const servers = [];
    for (const [name, value] of new FormData(form).entries()) {
      const v = String(value).trim();
      if (!v) continue;
      if (name === "from" || name === "to") {
        const ms = new Date(v).getTime();  // datetime-local is local time
        if (!Number.isNaN(ms)) filters[name] = String(ms);
      } else if (name === "server") {
        servers.push(v);
      } else {
        filters[name] = v;
      }
    }
    if (servers.length > 0) filters.server = servers.join(",");
    return filters;
  }

  // Retroview's "Select servers": every server the collector knows, as checkboxes.
  async function loadServerOptions() {
    const data = await api("/v1/sessions?group=server&order=host&limit=500");
    const box = $("#server-options");
    const checked = new Set($$("input[name=server]:checked", box).map((i) => i.value));
    for (const id of (state.filters.server || "").split(",")) if (id) checked.add(id);
    box.replaceChildren();
    const rows = (data && data.rows) || [];
    if (rows.length === 0) box.append(el("p", { class: "empty" }, "No servers yet"));
    for (const row of rows) {
      const input = el("input", { type: "checkbox", name: "server", value: row.server_id });
      input.checked = checked.has(row.server_id);
      input.addEventListener("change", updateServerSummary);
      box.append(el("label", { title: row.server_id }, input, row.host && row.host !== row.server_id ? `${row.host} (${row.server_id})` : row.server_id));
    }
    updateServerSummary();
  }

  function updateServerSummary() {
    const picked = $$("#server-options input:checked").map((i) => i.value);
    $("#server-picker summary").textContent = picked.length === 0 ? "all servers" : picked.length === 1 ? picked[0] : `${picked.length} servers`;
  }

  async function loadSessions() {
    viewToFragment();
    const params = sessionsQuery({ limit: PAGE_SIZE, offset: state.offset });
    const data = await api(`/v1/sessions?${params}`);
    const rows = (data && data.rows) || [];
    const total = Number(data && data.total) || 0;

    // Retroview's columns for the tab, those the API returned; a field of an unexpected group
    // shape still shows (after them) rather than silently vanish.
    const present = new Set();
    for (const row of rows) for (const k of Object.keys(row)) if (!HIDDEN.has(k)) present.add(k);
    const known = new Set(Object.keys(LABELS));
    const preferred = COLUMNS[state.group].filter((c) => present.has(c) || rows.length === 0);
    const extra = [...present].filter((c) => !preferred.includes(c) && !known.has(c));
    const columns = [...preferred, ...extra];

    const order = state.order || "";
    const orderColumn = order.replace(/^-/, "");
    const head = el("tr", {}, ...columns.map((c) => {
      const th = el("th", { "data-column": c, scope: "col" }, LABELS[c] || c);
      if (c === orderColumn) th.className = "sorted" + (order.startsWith("-") ? " desc" : "");
      th.addEventListener("click", () => {
        state.order = state.order === `-${c}` ? c : `-${c}`;
        state.offset = 0;
        guarded("Sessions", loadSessions);
      });
      return th;
    }));
    $("#sessions-table thead").replaceChildren(head);

    const body = $("#sessions-table tbody");
    body.replaceChildren();
    if (rows.length === 0) body.append(el("tr", {}, el("td", { class: "empty", colspan: Math.max(columns.length, 1) }, "No sessions match")));
    for (const row of rows) {
      // What the columns leave out (player, referer) is one hover away.
      const details = ["browser", "os", "user_agent", "referer"].filter((k) => row[k] && !columns.includes(k)).map((k) => `${LABELS[k]}: ${row[k]}`);
      body.append(el("tr", { title: details.length ? details.join("\n") : null }, ...columns.map((c) => valueCell(c, row[c]))));
    }

    const first = total === 0 ? 0 : state.offset + 1;
    $("#page-info").textContent = `${formatCount(first)}–${formatCount(state.offset + rows.length)} of ${formatCount(total)}`;
    $("#page-info").dataset.total = String(total);
    $("#prev-page").disabled = state.offset === 0;
    $("#next-page").disabled = state.offset + rows.length >= total;

    const exportParams = sessionsQuery();
    for (const format of ["csv", "xlsx"]) {
      exportParams.set("format", format);
      $(`#export-${format}`).href = `/v1/export?${exportParams}`;
    }
  }

  // Export links download through fetch so the read token goes in the Authorization header.
  async function download(event) {
    event.preventDefault();
    const link = event.currentTarget;
    const response = await fetch(link.href, { headers: authHeaders() });
    if (response.status === 401) { askForToken(); return; }
    if (!response.ok) { setStatus(`Export: HTTP ${response.status}`); return; }
    const disposition = response.headers.get("Content-Disposition") || "";
    const named = /filename="?([^";]+)"?/.exec(disposition);
    const blob = await response.blob();
    const url = URL.createObjectURL(blob);
    const a = el("a", { href: url, download: named ? named[1] : `streamtally-sessions.${link.id.split("-")[1]}` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }

  function wireSessions() {
    for (const tab of $$(".tabs button")) {
      tab.addEventListener("click", () => {
        $$(".tabs button").forEach((b) => b.classList.toggle("active", b === tab));
        state.group = tab.dataset.group;
        state.order = null;
        state.offset = 0;
        guarded("Sessions", loadSessions);
      });
    }
    $("#filters").addEventListener("submit", (event) => {
      event.preventDefault();
      state.filters = readFilters();
      state.offset = 0;
      guarded("Sessions", loadSessions);
    });
    $("#filters").addEventListener("reset", () => {
      state.filters = {};
      state.offset = 0;
      setTimeout(() => { updateServerSummary(); guarded("Sessions", loadSessions); }, 0);
    });
    $("#prev-page").addEventListener("click", () => {
      state.offset = Math.max(0, state.offset - PAGE_SIZE);
      guarded("Sessions", loadSessions);
    });
    $("#next-page").addEventListener("click", () => {
      state.offset += PAGE_SIZE;
      guarded("Sessions", loadSessions);
    });
    $("#export-csv").addEventListener("click", (e) => guarded("Export", () => download(e)));
    $("#export-xlsx").addEventListener("click", (e) => guarded("Export", () => download(e)));
  }

  function wireControls() {
    $("#top-month").value = currentMonth();
    $("#top-month").addEventListener("change", () => { viewToFragment(); guarded("Top 10", loadTop); });
    for (const button of $$(".presets button")) {
      button.addEventListener("click", () => {
        $$(".presets button").forEach((b) => b.classList.toggle("active", b === button));
        state.preset = button.dataset.preset;
        viewToFragment();
        guarded("Charts", loadCharts);
      });
    }
  }

  async function refreshAll() {
    setStatus("");
    await Promise.all([
      guarded("Month to date", loadUsage),
      guarded("Usage trend", loadUsageTrend),
      guarded("Servers", loadServerOptions),
      guarded("Top 10", loadTop),
      guarded("Charts", loadCharts),
      guarded("Audience", loadAudience),
      guarded("Sessions", loadSessions),
    ]);
    document.body.dataset.loaded = "true";  // lets tests and operators see the first load finished
  }

  takeTokenFromFragment();
  wireTokenDialog();
  wireControls();
  wireSessions();
  viewFromFragment();
  refreshAll();
  setInterval(() => {
    if (!state.askingForToken) {
      guarded("Month to date", loadUsage);
      guarded("Usage trend", loadUsageTrend);
      guarded("Charts", loadCharts);
    }
  }, 60000);
})();
