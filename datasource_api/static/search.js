// Search page: the URL holds the filters; the API answers one page per cursor.
"use strict";

(() => {
  const { el, api, clear, showError, pageParams, fillForm, cleanSubmit, fmtTime, fmtDelay, badge, traceHref } = PI;
  // the search parameters of GET /api/v1/messages (docs/api.md); anything else in the URL is ignored
  const PARAMS = ["from", "to", "recipient", "sender", "domain", "sender_domain", "subject", "queue_id", "message_id",
                  "client_ip", "status", "dsn", "relay", "host", "min_delay", "sort", "limit", "cursor"];

  const form = document.getElementById("search");
  const table = document.getElementById("results");
  const tbody = table.querySelector("tbody");
  const summary = document.getElementById("summary");
  const errorBox = document.getElementById("error");
  const pager = document.getElementById("pager");

  const params = pageParams(PARAMS);
  fillForm(form, params);
  cleanSubmit(form, "/");

  function cell(cls, ...content) {
    return el("td", cls ? { class: cls } : {}, ...content);
  }

  function row(r) {
    const qid = r.queue_id
      ? el("a", { href: traceHref(r.queue_id, r.host), class: "mono", title: r.host ? `on ${r.host}` : null }, r.queue_id)
      : el("span", { class: "muted", title: "rejected before Postfix assigned a queue ID" }, "—");
    const recipient = r.orig_recipient && r.orig_recipient !== r.recipient
      ? [r.recipient || "—", el("div", { class: "muted" }, `(to ${r.orig_recipient})`)]
      : [r.recipient || "—"];
    return el("tr", { class: `row-${r.status}` },
      cell("time", fmtTime(r.time)),
      cell("", badge(r.status)),
      cell("", qid),
      cell("clip", r.sender === "" ? el("span", { class: "muted" }, "<>") : (r.sender || "—")),
      el("td", { class: "clip", title: r.recipient || "" }, ...recipient),
      el("td", { class: "clip subject", title: r.subject || "" }, r.subject ?? "—"),
      cell("mono", r.dsn || "—"),
      cell("num", fmtDelay(r.delay_seconds)),
      el("td", { class: "clip relay", title: r.relay || "" }, r.relay || "—"),
      el("td", { class: "clip reply", title: r.response || "" }, r.response || "—"),
    );
  }

  function pageLink(cursor) {
    const p = new URLSearchParams(params);
    p.delete("cursor");
    if (cursor) p.set("cursor", cursor);
    const qs = p.toString();
    return "/" + (qs ? "?" + qs : "");
  }

  async function load() {
    summary.textContent = "Searching…";
    let body;
    try {
      body = await api("messages", params);
    } catch (err) {
      summary.textContent = "";
      showError(errorBox, err);
      return;
    }
    clear(tbody);
    for (const r of body.items) tbody.appendChild(row(r));
    table.hidden = body.items.length === 0;
    const more = body.next_cursor ? " — more on the next page" : "";
    summary.textContent = body.items.length
      ? `${body.items.length} deliver${body.items.length === 1 ? "y" : "ies"}${params.has("cursor") ? " on this page" : ""}${more}.`
      : "No deliveries match these filters.";
    const next = document.getElementById("next-page");
    const first = document.getElementById("first-page");
    next.hidden = !body.next_cursor;
    if (body.next_cursor) next.setAttribute("href", pageLink(body.next_cursor));
    first.hidden = !params.has("cursor");
    first.setAttribute("href", pageLink(null));
    pager.hidden = next.hidden && first.hidden;
  }

  load();
})();
