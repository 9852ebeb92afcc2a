"""``wa-billing up``: the web endpoint and the workers as child processes of one command."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from types import FrameType

from processor.context import Context

log = logging.getLogger(__name__)
SHARDS_PER_WORKER = 4  # INBOX_SHARDS when unset, with two workers or more


def _spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, *args], env=env)


def run_all(ctx: Context, port: int, workers: int, host: str) -> None:
    env = {**os.environ, "REDIS_URL": ctx.redis_url}
    if workers > 1:  # one job per shard: a pair is decided on one worker (workers/drain.py)
        env.setdefault("INBOX_SHARDS", str(SHARDS_PER_WORKER * workers))
    bind = f"{host}:{port}"
    web_workers = os.environ.get("WEB_CONCURRENCY", "4")
    web_args = ["-m", "gunicorn", "-b", bind, "-w", web_workers, "--access-logfile", "-"]
    web = _spawn([*web_args, "processor.web:create_app()"], env)
    crew = [_spawn(["-m", "processor.cli", "worker"], env) for _ in range(workers)]
    base = f"http://{host}:{port}"
    print(
        f"wa-billing is up\n"
        f"  webhook URL   {base}/webhook   (register it in Meta's App Dashboard, behind TLS)\n"
        f"  dashboard     {base}/rq        (user: any, password: $API_TOKEN)\n"
        f"  usage API     {base}/v1/usage?waba_id=...&month=YYYY-MM\n"
        f"  metrics       {base}/metrics   health {base}/healthz\n"
        f"  status        wa-billing status [--json]   (inbox, queue, failed, workers)\n"
        f"  redis         {ctx.redis_url}{' (embedded)' if ctx.embedded else ''}\n"
        f"  workers       {workers} (inbox shards: {env.get('INBOX_SHARDS', '1')})\n"
        "Ctrl-C stops everything.",
        flush=True,
    )
    stopping = False

    def _stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    try:
        while not stopping and web.poll() is None:
            for i, proc in enumerate(crew):
                if proc.poll() is not None:
                    log.warning("worker exited with %s; starting another", proc.returncode)
                    crew[i] = _spawn(["-m", "processor.cli", "worker"], env)
            time.sleep(0.5)
    finally:
        for proc in [web, *crew]:
            if proc.poll() is None:
                proc.terminate()
        for proc in [web, *crew]:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        if ctx.embedded is not None:
            ctx.embedded.stop()
