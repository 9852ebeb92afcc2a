/* Shared by wa-billing's RQ dashboard pages (templates/rq_dashboard/): what the page needs
   from the server comes in data-* attributes of <body> (URL prefix, instance, poll interval),
   never from inline script, so /rq runs under a Content-Security-Policy with script-src 'self'.
   Data is put in the page with textContent (never as HTML). */
"use strict";

const RQ = (() => {
  const body = document.body.dataset;
  const base = body.urlPrefix + body.instance;
  const interval = Math.max(500, Number(body.pollInterval) || 5000);
  const status = document.getElementById("rq-status");
  const autorefresh = document.getElementById("autorefresh-switch");

  /** An element with attributes (class, data-*, href, title...) and children (nodes or text). */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value !== undefined && value !== null) node.setAttribute(name, value);
    }
    node.append(...children.filter((c) => c !== undefined && c !== null));
    return node;
  }

  /** A table body's rows, or one row saying `empty` across `columns` cells. */
  function fill(tbody, rows, empty, columns) {
    tbody.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: columns }, empty))]));
  }

  async function request(url, options) {
    const reply = await fetch(url, { cache: "no-store", headers: { Accept: "application/json" }, ...options });
    if (!reply.ok) throw new Error(`${reply.status} ${reply.statusText}`);
    return reply.json();
  }

  function problem(what) {
    status.textContent = what;
  }

  /** POST one of the dashboard's actions (same-origin only: processor/web/dashboard.py). */
  async function post(url) {
    try {
      return await request(url, { method: "POST" });
    } catch (err) {
      problem(`action failed: ${err.message}`);
      return null;
    }
  }

  /** Run `load` now, then every poll interval while Autorefresh is on. */
  function poll(load) {
    const tick = async () => {
      if (autorefresh.checked) {
        try {
          await load();
          problem("");
        } catch (err) {
          problem(`update failed: ${err.message}`);
        }
      }
      setTimeout(tick, interval);
    };
    tick();
  }

  const enc = encodeURIComponent;
  const urls = {
    queues: () => `${base}/data/queues.json`,
    workers: () => `${base}/data/workers.json`,
    job: (id) => `${base}/data/job/${enc(id)}.json`,
    jobView: (id) => `${base}/view/job/${enc(id)}`,
    jobs: (q, registry, perPage, order, page) =>
      `${base}/data/jobs/${enc(q)}/${enc(registry)}/${enc(perPage)}/${enc(order)}/${enc(page)}.json`,
    jobsView: (q, registry, perPage, order, page) =>
      `${base}/view/jobs/${enc(q)}/${enc(registry)}/${enc(perPage)}/${enc(order)}/${enc(page)}`,
    requeue: (id) => `${body.urlPrefix}job/${enc(id)}/requeue`,
  };

  const UNITS = [["day", 86400], ["hour", 3600], ["minute", 60], ["second", 1]];

  /** "3 minutes ago" for an ISO date (the server's are UTC with an offset). */
  function ago(iso) {
    if (!iso) return "-";
    const seconds = Math.round((Date.now() - new Date(iso).getTime()) / 1000);
    const [unit, size] = UNITS.find(([, s]) => Math.abs(seconds) >= s) || UNITS[3];
    const n = Math.round(Math.abs(seconds) / size);
    const text = `${n} ${unit}${n === 1 ? "" : "s"}`;
    return seconds >= 0 ? `${text} ago` : `in ${text}`;
  }

  /** "3 minutes ago / 2026-12-02 04:00:00 UTC" */
  function when(iso) {
    if (!iso) return "-";
    return `${ago(iso)} / ${new Date(iso).toISOString().slice(0, 19).replace("T", " ")} UTC`;
  }

  document.getElementById("rq-instances").addEventListener("change", (event) => {
    window.location.href = `${body.urlPrefix}${event.target.value}/view/${body.tab}`;
  });

  return { el, fill, request, post, poll, urls, ago, when };
})();
