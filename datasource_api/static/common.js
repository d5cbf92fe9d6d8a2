// Shared by every page: DOM building (text only, never HTML from data), same-origin API calls,
// formatting, and the URL as the single place where a page's state lives.
"use strict";

const PI = (() => {
  // el("a", {href: "/x", class: "c"}, "text", childNode): attributes are set by name; children
  // that are strings become text nodes, so nothing from the API is ever parsed as HTML.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith("on")) throw new Error("no event attributes: use addEventListener");
      node.setAttribute(k, v === true ? "" : String(v));
    }
    append(node, children);
    return node;
  }

  function append(node, children) {
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      node.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
    return node;
  }

  class ApiError extends Error {
    constructor(status, message, parameter) {
      super(message);
      this.status = status;
      this.parameter = parameter || null;
    }
  }

  // GET /api/v1/<path>?<params>; resolves to the success shape, rejects with ApiError.
  async function api(path, params) {
    const qs = params && params.toString();
    const resp = await fetch("/api/v1/" + path + (qs ? "?" + qs : ""), {
      headers: { Accept: "application/json" }, credentials: "same-origin",
    });
    if (resp.status === 401) {  // token cookie missing or no longer valid: log in, then come back
      location.assign("/login?next=" + encodeURIComponent(location.pathname + location.search));
      throw new ApiError(401, "login needed");
    }
    let body = null;
    try { body = await resp.json(); } catch (e) { /* not JSON: reported below */ }
    if (!resp.ok || !body || !Array.isArray(body.items)) {
      const err = (body && body.error) || {};
      throw new ApiError(resp.status, err.message || `HTTP ${resp.status}`, err.parameter);
    }
    return body;
  }

  function showError(box, err) {
    box.hidden = false;
    clear(box).appendChild(document.createTextNode(
      (err.parameter ? `${err.parameter}: ` : "") + (err.message || String(err))));
  }

  // Query parameters of the page URL, limited to `allowed` and without empty values.
  function pageParams(allowed) {
    const out = new URLSearchParams();
    for (const [k, v] of new URLSearchParams(location.search)) {
      if (allowed.includes(k) && v.trim() !== "") out.append(k, v.trim());
    }
    return out;
  }

  // Fill a form's inputs from URL parameters (checkboxes by value, repeatable or comma-separated).
  function fillForm(form, params) {
    for (const input of form.elements) {
      if (!input.name) continue;
      const values = params.getAll(input.name).flatMap(v => v.split(","));
      if (input.type === "checkbox") input.checked = values.includes(input.value);
      else if (values.length) input.value = params.get(input.name);
    }
  }

  // Submitting a filter form navigates to a clean URL (no empty fields): bookmarkable state.
  function cleanSubmit(form, path) {
    form.addEventListener("submit", ev => {
      ev.preventDefault();
      const params = new URLSearchParams();
      for (const [k, v] of new FormData(form)) {
        if (typeof v === "string" && v.trim() !== "") params.append(k, v.trim());
      }
      const qs = params.toString();
      location.assign(path + (qs ? "?" + qs : ""));
    });
  }

  const pad = n => String(n).padStart(2, "0");

  // ISO 8601 UTC -> "2026-11-29 10:00:00" (UTC: the store's and the logs' own time).
  function fmtTime(iso) {
    if (!iso) return "—";
    const d = new Date(iso);
    if (isNaN(d)) return String(iso);
    return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ` +
           `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
  }

  function fmtDelay(s) {
    if (s === null || s === undefined) return "—";
    if (s < 60) return `${+s.toFixed(s < 10 ? 2 : 1)} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
    return `${(s / 86400).toFixed(1)} d`;
  }

  function fmtPct(x, digits = 1) {
    if (x === null || x === undefined) return "—";
    return `${(x * 100).toFixed(digits)} %`;
  }

  const fmtInt = n => (n === null || n === undefined ? "—" : Number(n).toLocaleString("en-US"));

  function badge(status) {
    return el("span", { class: `badge st-${String(status || "unknown").replace(/[^a-z]/g, "")}` }, status || "—");
  }

  function traceHref(queueId, host) {
    return "/messages/" + encodeURIComponent(queueId) + (host ? "?host=" + encodeURIComponent(host) : "");
  }

  function searchHref(filters) {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(filters)) {
      if (v !== null && v !== undefined && v !== "") params.set(k, v);
    }
    return "/?" + params.toString();
  }

  return { el, append, clear, api, ApiError, showError, pageParams, fillForm, cleanSubmit,
           fmtTime, fmtDelay, fmtPct, fmtInt, badge, traceHref, searchHref };
})();
