/* The jobs view of one queue's registry: rows, pagination, Requeue (failed jobs), the filter
   controls (they open the view they select), Requeue all and Compact. */
"use strict";

(() => {
  const table = document.getElementById("jobs");
  const tbody = table.querySelector("tbody");
  const pages = document.querySelector("#page-selection ul");
  const view = table.dataset;

  function row(job) {
    const failed = job.exc_info
      ? [RQ.el("span", { class: "end_date" }, `Failed ${RQ.ago(job.ended_at)}`), RQ.el("pre", { class: "exc_info" }, job.exc_info)]
      : [];
    const requeue = job.exc_info
      ? RQ.el("button", { type: "button", "data-role": "requeue-job-btn", class: "btn btn-outline-warning btn-sm btn-block" }, "Requeue")
      : null;
    return RQ.el(
      "tr",
      { "data-role": "job", "data-job-id": job.id },
      RQ.el(
        "td",
        {},
        RQ.el("span", { class: "description ellipsify", title: job.description }, job.description || ""),
        RQ.el("div", { class: "job_id" }, RQ.el("a", { href: RQ.urls.jobView(job.id) }, job.id)),
        ...failed,
      ),
      RQ.el("td", {}, RQ.el("span", { class: "creation_date" }, RQ.ago(job.created_at))),
      RQ.el("td", { class: "actions narrow" }, requeue),
    );
  }

  function link(label, target, state) {
    const attrs = { class: `page-item${state ? ` ${state}` : ""}` };
    if (state === "active") attrs["aria-current"] = "page";
    return RQ.el("li", attrs, RQ.el("a", { class: "page-link", href: target ? target.url : "#" }, label));
  }

  function pagination(p) {
    const none = p.num_pages === 0;
    return [
      link("«", p.first_page, p.current_page === 1 || none ? "disabled" : ""),
      link("‹", p.prev_page, p.prev_page ? "" : "disabled"),
      ...p.pages_in_window.map((page) => link(String(page.number), page, page.number === p.current_page ? "active" : "")),
      link("›", p.next_page, p.next_page ? "" : "disabled"),
      link("»", p.last_page, p.current_page === p.num_pages || none ? "disabled" : ""),
    ];
  }

  async function load() {
    const data = await RQ.request(RQ.urls.jobs(view.queue, view.registry, view.perPage, view.order, view.page));
    RQ.fill(tbody, data.jobs.map(row), "No jobs.", 3);
    pages.replaceChildren(...pagination(data.pagination));
  }

  tbody.addEventListener("click", async (event) => {
    const button = event.target.closest("[data-role=requeue-job-btn]");
    if (!button) return;
    const tr = button.closest("tr");
    button.disabled = true;
    if (await RQ.post(RQ.urls.requeue(tr.dataset.jobId))) {
      tr.remove();
      await load().catch(() => {});
    } else {
      button.disabled = false;
    }
  });

  for (const id of ["requeue-all-btn", "compact-btn"]) {
    const button = document.getElementById(id);
    if (!button) continue;
    button.addEventListener("click", async () => {
      if (window.confirm(`Do you really want to ${button.dataset.confirm}?`)) {
        await RQ.post(button.dataset.url);
        await load().catch(() => {});
      }
    });
  }

  const queue = document.getElementById("select-queue");
  const open = () => {
    window.location.href = RQ.urls.jobsView(
      queue.value || view.queue,
      document.getElementById("select-registry").value,
      document.getElementById("select-per-page").value || view.perPage,
      document.getElementById("select-sort-order").value,
      1,
    );
  };
  for (const id of ["select-queue", "select-registry", "select-sort-order", "select-per-page"]) {
    document.getElementById(id).addEventListener("change", open);
  }

  RQ.poll(load);
})();
