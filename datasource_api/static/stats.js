// Delivery-health page: one API call per panel (GET /api/v1/stats/<name>), all with the range
// and filters of the URL; a panel that fails shows its own error and the others still draw.
"use strict";

(() => {
  const { el, api, clear, pageParams, fillForm, cleanSubmit, fmtPct, fmtInt, fmtDelay, searchHref, fmtTime } = PI;
  const PARAMS = ["from", "to", "host", "domain", "interval"];
  const form = document.getElementById("range");
  const params = pageParams(PARAMS);
  fillForm(form, params);
  cleanSubmit(form, "/stats");

  // quick ranges keep the other filters
  for (const a of document.querySelectorAll(".quick a[data-range]")) {
    const p = new URLSearchParams(params);
    p.delete("to");
    p.delete("interval");
    p.set("from", a.dataset.range);
    a.setAttribute("href", "/stats?" + p.toString());
    if (params.get("from") === a.dataset.range && !params.has("to")) a.classList.add("active");
  }

  // resolved range of the answers (meta.from/to), so a click opens exactly this range in the search
  let range = { from: params.get("from") || "24h", to: params.get("to") || "" };
  const filters = () => ({ from: range.from, to: range.to, host: params.get("host") });

  const chartBox = id => document.querySelector(`#${id} .chart`);
  const sum = key => rows => rows.reduce((a, r) => a + (r[key] || 0), 0);
  const total = key => rows => fmtInt(sum(key)(rows));
  const share = (num, den) => rows => { const d = sum(den)(rows); return d ? fmtPct(sum(num)(rows) / d) : "—"; };

  async function panel(name, id, extra, draw) {
    const box = chartBox(id);
    box.textContent = "Loading…";
    const p = new URLSearchParams(params);
    for (const [k, v] of Object.entries(extra || {})) p.set(k, v);
    try {
      const body = await api("stats/" + name, p);
      if (body.meta && body.meta.from) range = { from: body.meta.from, to: body.meta.to || "" };
      draw(box, body.items, body.meta || {});
      if (body.meta && body.meta.note && params.has("domain")) box.append(el("p", { class: "muted note" }, `Note: ${body.meta.note}.`));
      box.dataset.loaded = "true";
      return body;
    } catch (err) {
      clear(box).appendChild(el("p", { class: "error", role: "alert" }, `${name}: ${err.message}`));
      box.dataset.loaded = "error";
      return null;
    }
  }

  function tiles(item) {
    const t = document.getElementById("tiles");
    const s = item.by_status || {};
    const tile = (k, v, key) => el("div", { class: "tile", "data-tile": key }, el("div", { class: "v" }, v), el("div", { class: "k" }, k));
    clear(t).append(
      tile("Messages received", fmtInt(item.messages_received), "received"),
      tile("Delivery records", fmtInt(item.records), "records"),
      tile("Delivered", fmtPct(item.sent_rate), "sent"),
      tile("Bounced", fmtPct(item.bounced_rate, 2), "bounced"),
      tile("Deferred", fmtPct(item.deferred_rate, 2), "deferred"),
      tile("Expired", fmtPct(item.expired_rate, 2), "expired"),
      tile("Rejected at SMTP", fmtInt(s.rejected || 0), "rejected"));
  }

  const domainLink = r => searchHref({ ...filters(), domain: r.domain });

  // summary is not a chart: fetched directly
  (async () => {
    const p = new URLSearchParams(params);
    try {
      const body = await api("stats/summary", p);
      if (body.items[0]) tiles(body.items[0]);
      const m = body.meta || {};
      if (m.from) {
        range = { from: m.from, to: m.to || "" };
        document.getElementById("range-text").textContent =
          `${fmtTime(m.from)} to ${m.to ? fmtTime(m.to) : "now"} UTC` + (params.get("domain") ? `, recipient domain ${params.get("domain")}` : "")
          + (params.get("host") ? `, host ${params.get("host")}` : "");
      }
    } catch (err) {
      clear(document.getElementById("tiles")).appendChild(el("p", { class: "error", role: "alert" }, `summary: ${err.message}`));
    }
  })();

  panel("volume", "p-volume", null, (box, rows) => Charts.timeSeries(box, rows, [
    { key: "received", name: "received", color: 0, agg: total("received"), fmt: fmtInt, dash: [4, 3] },
    { key: "sent", name: "sent", color: 1, agg: total("sent"), fmt: fmtInt, fill: true },
    { key: "deferred", name: "deferred", color: 2, agg: total("deferred"), fmt: fmtInt },
    { key: "bounced", name: "bounced", color: 3, agg: total("bounced"), fmt: fmtInt },
    { key: "expired", name: "expired", color: 4, agg: total("expired"), fmt: fmtInt },
    { key: "rejected", name: "rejected", color: 5, agg: total("rejected"), fmt: fmtInt },
  ], { caption: "Totals over the range; point at the chart for one interval" }));

  panel("rates", "p-rates", null, (box, rows) => Charts.timeSeries(box, rows, [
    { key: "bounce_rate", name: "bounce rate", color: 3, agg: rows => peak(rows, "bounce_rate"), fmt: v => fmtPct(v, 2) },
    { key: "defer_rate", name: "defer rate", color: 2, agg: rows => peak(rows, "defer_rate"), fmt: v => fmtPct(v, 2) },
  ], { percent: true, caption: "Highest interval; point at the chart for one interval" }));

  function peak(rows, key) {
    const vals = rows.map(r => r[key]).filter(v => v !== null && v !== undefined);
    return vals.length ? `max ${fmtPct(Math.max(...vals), 2)}` : "—";
  }

  panel("sla", "p-sla", null, (box, rows, meta) => {
    if (meta.threshold_seconds) document.getElementById("sla-threshold").textContent = fmtDelay(meta.threshold_seconds);
    return Charts.timeSeries(box, rows, [
      { key: "share", name: "delivered in time", color: 1, agg: share("within", "delivered"), fmt: v => fmtPct(v) },
    ], { percent: true, caption: "Share over the whole range; point at the chart for one interval" });
  });

  panel("dkim", "p-dkim", null, (box, rows) => Charts.timeSeries(box, rows, [
    { key: "rate", name: "DKIM-signed", color: 6, agg: share("signed", "received"), fmt: v => fmtPct(v) },
  ], { percent: true, caption: "Share over the whole range; point at the chart for one interval" }));

  panel("domains", "p-domains", { limit: "12" }, (box, rows) => Charts.bars(box, rows, [
    { key: "bounce_rate", name: "bounce rate", color: 3, fmt: v => fmtPct(v, 1) },
    { key: "defer_rate", name: "defer rate", color: 2, fmt: v => fmtPct(v, 1) },
  ], { label: r => `${r.domain} (${fmtInt(r.records)})`, href: domainLink, min: 0.01, title: "bounce and defer rate by domain" }));

  panel("slow-domains", "p-slow", { limit: "10" }, (box, rows) => Charts.bars(box, rows, [
    { key: "p50_delay_seconds", name: "median delay", color: 0, fmt: fmtDelay },
    { key: "p95_delay_seconds", name: "95th percentile", color: 2, fmt: fmtDelay },
  ], { label: r => `${r.domain} (${fmtInt(r.deliveries)})`, href: domainLink, title: "slowest domains" }));

  const STATUS_COLOR = { sent: 1, deferred: 2, bounced: 3, expired: 4, rejected: 5 };
  panel("dsn", "p-dsn", { limit: "15" }, (box, rows) => Charts.bars(box, rows, [
    { key: "records", name: "records", color: r => STATUS_COLOR[r.status] ?? 7, fmt: fmtInt },
  ], { label: r => `${r.dsn} ${r.domain || "(no domain)"} ${r.status}`,
       href: r => searchHref({ ...filters(), dsn: r.dsn, domain: r.domain, status: r.status }), title: "DSN breakdown" }));

  panel("heatmap", "p-heatmap", null, (box, rows) => Charts.heatmap(box, rows));

  panel("tls-coverage", "p-tls", { limit: "10" }, (box, rows) => Charts.bars(box, rows, [
    { key: "share", name: "TLS share", color: 6, fmt: v => fmtPct(v) },
  ], { label: r => `${r.domain} (${fmtInt(r.deliveries)})`, href: domainLink, min: 1, title: "TLS coverage" }));

  panel("rejects", "p-rejects", { limit: "10" }, (box, rows) => Charts.bars(box, rows, [
    { key: "records", name: "rejects", color: 5, fmt: fmtInt },
  ], { label: r => `${r.code || ""} ${r.reason || "other"}`.trim(),
       href: () => searchHref({ ...filters(), status: "rejected", domain: params.get("domain") }), title: "SMTP rejects by reason" }));

  panel("top-senders", "p-senders", { limit: "10" }, (box, rows) => Charts.bars(box, rows, [
    { key: "recipients", name: "recipients", color: 0, fmt: fmtInt },
    { key: "bounced", name: "bounced", color: 3, fmt: fmtInt },
  ], { label: r => r.sender, href: r => searchHref({ ...filters(), sender: r.sender }),
       title: "top senders" }));
})();
