/* The queues view: one row per queue, a count per registry linking to its jobs. */
"use strict";

(() => {
  const tbody = document.querySelector("#queues tbody");
  const REGISTRIES = [
    ["queued", "count"],
    ["deferred", "deferred_job_registry_count"],
    ["scheduled", "scheduled_job_registry_count"],
    ["started", "started_job_registry_count"],
    ["finished", "finished_job_registry_count"],
    ["failed", "failed_job_registry_count"],
    ["canceled", "canceled_job_registry_count"],
  ];

  function row(queue) {
    const cells = REGISTRIES.map(([registry, count]) =>
      RQ.el(
        "td",
        { class: registry === "failed" || registry === "canceled" ? "failed" : "narrow" },
        RQ.el("a", { href: queue[`${registry}_url`] }, String(queue[count])),
      ),
    );
    return RQ.el("tr", { "data-role": "queue", "data-queue": queue.name }, RQ.el("td", {}, queue.name), ...cells);
  }

  RQ.poll(async () => {
    const data = await RQ.request(RQ.urls.queues());
    RQ.fill(tbody, data.queues.map(row), "No queues.", 8);
  });
})();
