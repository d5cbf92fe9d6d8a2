// Small chart builders for the delivery-health page: uPlot for time series, plain SVG for bar
// charts and the heatmap. Labels are text nodes; links are same-site search URLs.
"use strict";

const Charts = (() => {
  const { el, clear, fmtInt } = PI;
  const SVG = "http://www.w3.org/2000/svg";
  // same order as the .sw-N classes in app.css
  const PALETTE = ["#1f6feb", "#1a7f37", "#d97706", "#c62828", "#8e24aa", "#6d4c41", "#00838f", "#757575"];

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined) node.setAttribute(k, String(v));
    for (const c of children) if (c !== null && c !== undefined) node.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
    return node;
  }

  function empty(container, text) {
    clear(container).appendChild(el("p", { class: "empty" }, text || "No data in this range."));
  }

  function legend(entries) {
    return el("div", { class: "legend" }, entries.map(e =>
      el("span", { class: "item", "data-series": e.key },
        el("span", { class: `swatch sw-${e.color}` }), el("span", { class: "name" }, e.name),
        el("strong", { class: "value" }, e.value))));
  }

  function widthOf(container) {
    return Math.max(280, Math.floor(container.getBoundingClientRect().width || container.clientWidth || 600));
  }

  // 24-hour UTC tick labels; the date is added under the first tick of each day.
  function timeTicks(u, splits) {
    let lastDay = null;
    return splits.map(ts => {
      const d = new Date(ts * 1000);
      const day = `${String(d.getUTCMonth() + 1).padStart(2, "0")}-${String(d.getUTCDate()).padStart(2, "0")}`;
      const hm = `${String(d.getUTCHours()).padStart(2, "0")}:${String(d.getUTCMinutes()).padStart(2, "0")}`;
      const label = day !== lastDay ? `${hm}\n${day}` : hm;
      lastDay = day;
      return label;
    });
  }

  // Time series. series: [{key, name, color (palette index), agg: rows => text, fmt: value => text}]
  // The legend shows the whole range (agg) and, while the pointer is over the chart, that bucket.
  function timeSeries(container, rows, series, opts = {}) {
    if (typeof uPlot === "undefined") {
      empty(container, "Charting library missing: run the web UI build (see README).");
      return null;
    }
    if (!rows.length) { empty(container); return null; }
    clear(container);
    const xs = rows.map(r => Date.parse(r.time) / 1000);
    const data = [xs, ...series.map(s => rows.map(r => (r[s.key] === undefined ? null : r[s.key])))];
    const axisFmt = opts.percent ? (u, vals) => vals.map(v => `${+(v * 100).toFixed(1)} %`) : undefined;
    const plot = el("div", { class: "plot" });
    const totals = series.map(s => ({ key: s.key, name: s.name, color: s.color, value: s.agg(rows) }));
    const leg = legend(totals);
    const caption = el("div", { class: "legend-caption muted" }, opts.caption || "Whole range");
    container.append(plot, leg, caption);
    const values = leg.querySelectorAll(".value");
    const u = new uPlot({
      width: widthOf(container), height: opts.height || 220,
      tzDate: ts => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"),
      legend: { show: false },
      cursor: { drag: { x: false, y: false } },
      scales: { y: opts.percent ? { range: (u, min, max) => [0, Math.max(max || 0, 0.01)] } : { range: (u, min, max) => [0, Math.max(max || 0, 1)] } },
      axes: [{ values: timeTicks, space: 60 }, { values: axisFmt, size: 60 }],
      series: [{}, ...series.map(s => ({ label: s.name, stroke: PALETTE[s.color], width: 1.5,
                                        fill: s.fill ? PALETTE[s.color] + "22" : undefined,
                                        dash: s.dash, spanGaps: false, points: { show: false } }))],
      hooks: {
        setCursor: [u => {
          const i = u.cursor.idx;
          series.forEach((s, n) => {
            values[n].textContent = i === null || i === undefined ? totals[n].value : s.fmt(rows[i][s.key]);
          });
          caption.textContent = i === null || i === undefined ? (opts.caption || "Whole range")
            : `At ${PI.fmtTime(rows[i].time)} UTC`;
        }],
      },
    }, data, plot);
    new ResizeObserver(() => u.setSize({ width: widthOf(container), height: opts.height || 220 })).observe(container);
    return u;
  }

  // Horizontal bars. rows: items; bars: [{key, name, color, fmt}]; label(row) -> text;
  // href(row) -> link of the label (a search filtered to that row). Scale: the largest value.
  function bars(container, rows, bars, opts) {
    if (!rows.length) { empty(container); return null; }
    clear(container);
    const width = widthOf(container);
    const labelW = Math.min(220, Math.floor(width * 0.38)), valueW = 90;
    const barH = 12, gap = 3, rowH = bars.length * (barH + gap) + 8;
    const max = Math.max(opts.min || 0, ...rows.flatMap(r => bars.map(b => r[b.key] || 0))) || 1;
    const plotW = width - labelW - valueW;
    const chart = svg("svg", { class: "bars", width, height: rows.length * rowH + 4, viewBox: `0 0 ${width} ${rows.length * rowH + 4}`,
                               role: "img", "aria-label": opts.title || "bar chart" });
    rows.forEach((r, i) => {
      const y = i * rowH + 4;
      const text = opts.label(r);
      const fits = Math.floor((labelW - 10) / 7);  // about 7 px a character at 12 px
      const shown = text.length > fits ? text.slice(0, fits - 1) + "…" : text;
      const label = svg("text", { class: "label", x: labelW - 8, y: y + rowH / 2, "text-anchor": "end", "dominant-baseline": "middle" },
                        svg("title", {}, text), shown);
      const href = opts.href && opts.href(r);
      chart.appendChild(href ? svg("a", { href }, label) : label);
      bars.forEach((b, n) => {
        const v = r[b.key];
        const by = y + n * (barH + gap);
        const w = v ? Math.max(1, (v / max) * plotW) : 0;
        chart.append(
          svg("rect", { class: `bar sw-${typeof b.color === "function" ? b.color(r) : b.color}`, x: labelW, y: by, width: w, height: barH, rx: 2 },
              svg("title", {}, `${text} — ${b.name}: ${b.fmt(v)}`)),
          svg("text", { class: "value", x: labelW + w + 4, y: by + barH / 2, "dominant-baseline": "middle" }, b.fmt(v)));
      });
    });
    container.append(chart);
    if (bars.length > 1 || opts.legend) {
      container.append(legend(bars.map(b => ({ key: b.key, name: b.name, color: typeof b.color === "function" ? 0 : b.color,
                                               value: b.legendValue ? b.legendValue(rows) : "" }))));
    }
    return chart;
  }

  // Weekday x hour grid (weekday 0 = Monday), colour by count, a legend with the scale.
  function heatmap(container, rows) {
    const total = rows.reduce((a, r) => a + (r.messages || 0), 0);
    if (!rows.length || !total) { empty(container); return null; }
    clear(container);
    const days = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const width = widthOf(container), left = 40, top = 18;
    const cw = Math.max(8, Math.floor((width - left - 4) / 24)), ch = 22;
    const max = Math.max(...rows.map(r => r.messages || 0));
    const chart = svg("svg", { class: "heat", width, height: top + 7 * ch + 4, viewBox: `0 0 ${width} ${top + 7 * ch + 4}`,
                               role: "img", "aria-label": "deliveries by weekday and hour" });
    for (let h = 0; h < 24; h += 3) chart.append(svg("text", { x: left + h * cw + 2, y: 12 }, String(h).padStart(2, "0")));
    days.forEach((d, i) => chart.append(svg("text", { x: 0, y: top + i * ch + ch / 2, "dominant-baseline": "middle" }, d)));
    for (const r of rows) {
      const t = (r.messages || 0) / max;
      // white -> blue; an empty cell stays light grey so "none" and "few" differ
      const fill = r.messages ? `rgb(${Math.round(222 - 191 * t)},${Math.round(235 - 124 * t)},${Math.round(247 - 12 * t)})` : "#f1f3f5";
      chart.append(svg("rect", { class: "cell", x: left + r.hour * cw, y: top + r.weekday * ch, width: cw, height: ch, fill },
        svg("title", {}, `${days[r.weekday]} ${String(r.hour).padStart(2, "0")}:00–${String(r.hour).padStart(2, "0")}:59 UTC: ${fmtInt(r.messages)} deliveries`)));
    }
    container.append(chart, el("div", { class: "legend" },
      el("span", { class: "item" }, "Busiest hour: ", el("strong", { class: "value" }, fmtInt(max))),
      el("span", { class: "item" }, "Total: ", el("strong", { class: "value" }, fmtInt(total)))));
    return chart;
  }

  return { timeSeries, bars, heatmap, empty, PALETTE };
})();
