// Trace page: every instance of a queue ID with its recipients, attempts, linked queue IDs
// (bounce notices, content-filter hops) and the raw log lines in order.
"use strict";

(() => {
  const { el, api, showError, fmtTime, fmtDelay, fmtInt, badge, traceHref, searchHref } = PI;

  const raw = location.pathname.replace(/^\/messages\//, "");
  let queueId;
  try { queueId = decodeURIComponent(raw); } catch (e) { queueId = raw; }
  const host = new URLSearchParams(location.search).get("host");
  const box = document.getElementById("instances");
  const summary = document.getElementById("summary");
  document.getElementById("trace-qid").textContent = queueId;
  document.title = `${queueId} · Message trace · Postfix Insights`;
  document.getElementById("back").setAttribute("href", searchHref({ queue_id: queueId, host }));

  const dash = v => (v === null || v === undefined || v === "" ? "—" : v);

  function fields(pairs) {
    const dl = el("dl", { class: "fields" });
    for (const [k, v] of pairs) dl.append(el("dt", {}, k), el("dd", {}, v instanceof Node ? v : dash(v)));
    return dl;
  }

  function qidLink(qid, h) {
    return qid ? el("a", { class: "mono", href: traceHref(qid, h) }, qid) : "—";
  }

  function messageFields(inst) {
    const m = inst.message;
    const client = m.client_host || m.client_ip ? `${m.client_host || "unknown"}[${m.client_ip || "?"}]` : null;
    const msgId = m.message_id
      ? el("a", { href: searchHref({ message_id: m.message_id }), title: "every delivery of this Message-ID" }, m.message_id)
      : dash(m.message_id);
    return fields([
      ["Host", inst.host], ["Queued", fmtTime(m.time)], ["First line", fmtTime(m.first_time)],
      ["Last line", fmtTime(m.last_time)], ["Sender", m.sender === "" ? "<> (null sender)" : m.sender],
      ["Subject", m.subject], ["Message-ID", msgId], ["Client", client], ["SASL user", m.sasl_user],
      ["Size", m.size === null || m.size === undefined ? null : `${fmtInt(m.size)} bytes`],
      ["Recipients", m.nrcpt], ["Origin", m.origin],
      ["DKIM", m.dkim_domain ? `${m.dkim_domain}${m.dkim_result ? " (" + m.dkim_result + ")" : ""}` : m.dkim_result],
    ]);
  }

  function attemptsTable(attempts) {
    const tbody = el("tbody");
    for (const a of attempts) {
      tbody.append(el("tr", {},
        el("td", { class: "time" }, fmtTime(a.time)), el("td", {}, badge(a.status)),
        el("td", { class: "mono" }, dash(a.dsn)), el("td", {}, dash(a.relay)),
        el("td", { class: "num" }, fmtDelay(a.delay_seconds)), el("td", {}, dash(a.tls)),
        el("td", { class: "reply" }, dash(a.response))));
    }
    return el("table", { class: "attempts" },
      el("thead", {}, el("tr", {}, ["Time (UTC)", "Status", "DSN", "Relay", "Delay", "TLS", "Remote reply"]
        .map(h => el("th", {}, h)))), tbody);
  }

  function recipient(r) {
    const head = el("div", { class: "head" },
      el("strong", {}, dash(r.recipient)),
      r.orig_recipient && r.orig_recipient !== r.recipient ? el("span", { class: "muted" }, `(to ${r.orig_recipient})`) : null,
      badge(r.status), el("span", { class: "mono" }, dash(r.dsn)),
      el("span", { class: "muted" }, `delay ${fmtDelay(r.delay_seconds)}`),
      el("span", { class: "muted" }, `${r.attempts.length} attempt${r.attempts.length === 1 ? "" : "s"}`));
    return el("div", { class: "recipient" }, head,
      r.attempts.length ? attemptsTable(r.attempts) : el("p", { class: "muted" }, "No delivery attempt logged."));
  }

  function linked(inst) {
    const others = (inst.instances || []).filter(i => i.role !== "this");
    if (!others.length && !(inst.links || []).length) return null;
    const tbody = el("tbody");
    for (const l of inst.links || []) {
      tbody.append(el("tr", {}, el("td", {}, dash(l.kind)), el("td", {}, qidLink(l.parent_queue_id, inst.host)),
        el("td", {}, qidLink(l.child_queue_id, inst.host)), el("td", { class: "time" }, fmtTime(l.time))));
    }
    const list = el("ul", { class: "linked" });
    for (const i of others) {
      list.append(el("li", {}, el("span", { class: "muted" }, `${i.role}: `), qidLink(i.queue_id, i.host),
        ` on ${dash(i.host)}, ${fmtTime(i.first_time)}`, i.subject ? ` — ${i.subject}` : ""));
    }
    return el("section", { class: "links" }, el("h3", {}, "Linked queue IDs"),
      (inst.links || []).length ? el("table", {}, el("thead", {}, el("tr", {},
        ["Kind", "Parent", "Child", "Time (UTC)"].map(h => el("th", {}, h)))), tbody) : null,
      others.length ? list : null);
  }

  function rawLines(inst) {
    const ol = el("ol", { class: "lines" });
    for (const l of inst.lines || []) {
      ol.append(el("li", { class: l.queue_id && l.queue_id !== inst.queue_id ? "other" : null,
                           title: l.queue_id ? `queue ID ${l.queue_id}` : null }, l.line));
    }
    return el("section", { class: "raw" }, el("h3", {}, `Raw log lines (${(inst.lines || []).length})`), ol);
  }

  // recipients come for the whole linked family: this message's first, then each linked queue ID's
  function recipientGroups(inst) {
    const groups = new Map([[inst.queue_id, []]]);
    for (const r of inst.recipients) {
      const q = r.queue_id || inst.queue_id;
      if (!groups.has(q)) groups.set(q, []);
      groups.get(q).push(r);
    }
    const out = [];
    for (const [q, rows] of groups) {
      if (q === inst.queue_id) {
        out.push(el("h3", {}, "Recipients"),
          rows.length ? rows.map(recipient) : el("p", { class: "muted" }, "No recipient logged yet."));
        continue;
      }
      const role = (inst.instances || []).find(i => i.queue_id === q);
      const link = (inst.links || []).find(l => l.child_queue_id === q || l.parent_queue_id === q);
      const what = [role && role.role, link && link.kind].filter(Boolean).join(", ");
      out.push(el("h3", { class: "linked-recipients" }, "Recipients of linked queue ID ",
        qidLink(q, (role && role.host) || inst.host), what ? ` (${what})` : ""), rows.map(recipient));
    }
    return out;
  }

  function instance(inst) {
    return el("article", { class: "instance", "data-msg-id": inst.msg_id },
      el("h2", {}, el("span", { class: "mono" }, dash(inst.queue_id)), el("span", { class: "muted" }, `on ${dash(inst.host)}`),
        badge(inst.message.status)),
      messageFields(inst),
      recipientGroups(inst),
      linked(inst),
      rawLines(inst));
  }

  async function load() {
    const params = new URLSearchParams();
    if (host) params.set("host", host);
    let body;
    try {
      body = await api("messages/" + encodeURIComponent(queueId), params);
    } catch (err) {
      summary.textContent = "";
      showError(document.getElementById("error"), err);
      return;
    }
    const n = body.items.length;
    summary.textContent = n > 1
      ? `Postfix used this queue ID for ${n} messages; newest first.` : "";
    summary.hidden = n <= 1;
    box.append(...body.items.map(instance));
  }

  load();
})();
