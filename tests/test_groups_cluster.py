"""Group deliveries with the ledger on a real Redis Cluster: a group's pair, its participants'
records and the business number's service allowance it shares with 1:1 messages all carry the
WABA's portfolio tag, so one apply call stays in one slot (rule book 7, G-1, G-5, G-12)."""

from __future__ import annotations

import pytest

from tests.cluster import LocalCluster
from tests.test_rules_groups import (  # noqa: F401  (collected here again, on the cluster)
    test_G_1_per_delivery,
    test_G_5_window_expiry_no_tiers,
    test_G_12_late_reorder,
    world,
)

pytestmark = pytest.mark.cluster


@pytest.fixture
def environ(environ: dict[str, str], redis_cluster: LocalCluster) -> dict[str, str]:
    """The conftest environment, with the ledger on the cluster."""
    return {**environ, "LEDGER_REDIS_URL": redis_cluster.url, "LEDGER_REDIS_CLUSTER": "true"}
