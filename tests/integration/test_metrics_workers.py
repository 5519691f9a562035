"""With two uvicorn workers, ``/metrics`` on either one covers both (multiprocess mode)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from server_proc import ServerProc, database_url, init_vault, running

REQUESTS = 40
FLUSH_WAIT = 1.5  # seconds: three of the workers' polls
HEALTH = "/api/v1/sys/health"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProc]:
    with database_url("sqlite", tmp_path) as url:
        vault = init_vault("sqlite", tmp_path, url)
        with running(vault, workers=2) as proc:
            yield proc


def _health_count(text: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "keysafe_http_requests_total" and sample.labels["route"] == HEALTH:
                total += sample.value
    return total


@pytest.mark.timeout(120)
def test_metrics_sum_every_worker(server: ServerProc) -> None:
    before = 0.0
    # Each worker adds its requests to the shared values twice a second (Metrics.flush).
    time.sleep(FLUSH_WAIT)
    with server.root() as root:
        before = _health_count(root.get("/metrics").text)
    for _ in range(REQUESTS):
        # A new connection each time: the kernel spreads them over both workers.
        with server.client() as client:
            assert client.get(HEALTH).status_code == 200
    time.sleep(FLUSH_WAIT)
    metrics_dir = server.vault.home / "data" / "metrics"
    pids = {p.stem.rsplit("_", 1)[-1] for p in metrics_dir.glob("*.db")}
    assert len(pids) >= 2, sorted(p.name for p in metrics_dir.iterdir())
    for _ in range(6):  # whichever worker answers the scrape
        with server.root() as root:
            scraped = root.get("/metrics")
        assert scraped.status_code == 200
        assert _health_count(scraped.text) - before == REQUESTS
