/* One job's view: its fields (reloaded every poll interval) and Requeue when it failed. */
"use strict";

(() => {
  const box = document.getElementById("job-data");
  const id = box.dataset.jobId;
  const requeue = document.getElementById("requeue-job-btn");
  const field = (name) => box.querySelector(`[data-field=${name}]`);

  function dependencies(job) {
    return (job.depends_on || []).map((dep, i) =>
      job.depends_on_status[i] === "active"
        ? RQ.el("li", {}, RQ.el("a", { href: RQ.urls.jobView(dep) }, dep))
        : RQ.el("li", {}, `${dep} (expired)`),
    );
  }

  async function load() {
    const job = await RQ.request(RQ.urls.job(id));
    for (const name of ["description", "origin", "status", "metadata", "exc_info"]) {
      field(name).textContent = job[name] ?? "";
    }
    field("result").textContent = JSON.stringify(job.result, null, 2);
    for (const name of ["created_at", "enqueued_at", "started_at", "ended_at"]) {
      field(name).textContent = RQ.when(job[name]);
    }
    field("depends_on").replaceChildren(...dependencies(job));
    requeue.hidden = job.status !== "failed";
  }

  requeue.addEventListener("click", async () => {
    requeue.disabled = true;
    await RQ.post(RQ.urls.requeue(id));
    requeue.disabled = false;
    await load().catch(() => {});
  });

  RQ.poll(load);
})();
