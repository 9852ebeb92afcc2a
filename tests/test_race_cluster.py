"""The racing-worker test with the ledger on the local Redis Cluster (RQ and the inbox on the
standalone Redis): the same records and usage as one worker on one Redis, and the totals by
hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cluster import LocalCluster
from tests.ledger_helpers import write_config
from tests.test_race import test_racing_workers_end_with_the_single_worker_result  # noqa: F401

pytestmark = [pytest.mark.e2e, pytest.mark.cluster]


@pytest.fixture
def environ(environ: dict[str, str], tmp_path: Path, redis_cluster: LocalCluster) -> dict[str, str]:
    """test_race's environment (its own rate book), the ledger on the cluster."""
    return {
        **environ,
        "BILLING_CONFIG_DIR": str(write_config(tmp_path / "config")),
        "LEDGER_REDIS_URL": redis_cluster.url,
        "LEDGER_REDIS_CLUSTER": "true",
    }
