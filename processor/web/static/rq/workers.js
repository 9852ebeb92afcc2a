/* The workers view: name (RQ and Python versions as its title), current job, queues. */
"use strict";

(() => {
  const tbody = document.querySelector("#workers tbody");

  function current(job) {
    if (job === "idle" || !job) return RQ.el("td", {}, "idle");
    const title = `Job ID: ${job.job_id}\nDescription: ${job.description || ""}\nCreated: ${RQ.ago(job.created_at)}`;
    return RQ.el("td", { title }, RQ.el("a", { href: RQ.urls.jobView(job.job_id) }, job.call_string));
  }

  function row(worker) {
    const title = worker.version && worker.python_version ? `RQ ${worker.version} / Python ${worker.python_version}` : null;
    return RQ.el(
      "tr",
      { "data-role": "worker", "data-state": worker.state },
      RQ.el("td", { title }, worker.name),
      current(worker.current_job),
      RQ.el("td", {}, worker.queues.join(", ")),
    );
  }

  RQ.poll(async () => {
    const data = await RQ.request(RQ.urls.workers());
    RQ.fill(tbody, data.workers.map(row), "No workers.", 3);
  });
})();
