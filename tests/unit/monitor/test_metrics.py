"""Metrics: per-app registries, the request counters, the interface for other capabilities."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from keysafe.monitor.metrics import Metrics


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_requests_latency_and_denials_are_counted() -> None:
    metrics = Metrics()
    route = "/api/v1/secrets/{path:path}"
    for status in (200, 200, 403, 401):
        metrics.request("GET", route, status, 0.002)
    metrics.rate_limited("key")
    got = samples(metrics)
    key = (("method", "GET"), ("route", route), ("status", "200"))
    assert got[("keysafe_http_requests_total", key)] == 2
    assert got[("keysafe_http_request_duration_seconds_count", (("route", route),))] == 4
    assert got[("keysafe_denials_total", (("reason", "forbidden"),))] == 1
    assert got[("keysafe_denials_total", (("reason", "unauthenticated"),))] == 1
    assert got[("keysafe_rate_limit_hits_total", (("scope", "key"),))] == 1


def test_each_app_has_its_own_registry() -> None:
    one, two = Metrics(), Metrics()
    one.rotation("ok")
    one.lease("issued")
    two.set_sealed(True)
    assert samples(one)[("keysafe_rotations_total", (("outcome", "ok"),))] == 1
    assert samples(one)[("keysafe_lease_events_total", (("event", "issued"),))] == 1
    assert ("keysafe_rotations_total", (("outcome", "ok"),)) not in samples(two)
    assert samples(two)[("keysafe_sealed", ())] == 1
    assert samples(one)[("keysafe_sealed", ())] == 0
