"""Metrics: per-app registries, the request counters, the interface for other capabilities."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from keysafe.monitor import metrics as metrics_mod
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


def test_summed_requests_land_in_the_buckets_observe_would_pick() -> None:
    """Requests are summed in memory and added at a flush (or an exposition): the
    buckets and sum must equal those of one ``observe`` per request."""
    metrics = Metrics()
    route = "/api/v1/sys/health"
    latencies = (0.0003, 0.0005, 0.0007, 0.002, 0.0025, 10.0)
    reference = Metrics()
    for seconds in latencies:
        metrics.request("GET", route, 200, seconds)
        reference.latency.labels(route).observe(seconds)
    metrics.flush()
    metrics.flush()  # nothing pending: adds nothing
    got, want = samples(metrics), samples(reference)
    for name, labels in want:
        if name.startswith("keysafe_http_request_duration_seconds") and "created" not in name:
            assert got[(name, labels)] == want[(name, labels)], (name, labels)
    bucket = "keysafe_http_request_duration_seconds_bucket"
    assert got[(bucket, (("le", "0.0005"), ("route", route)))] == 2  # upper bounds inclusive
    assert got[(bucket, (("le", "+Inf"), ("route", route)))] == len(latencies)


def test_a_full_request_log_is_summed_without_losing_a_request() -> None:
    metrics = Metrics()
    route = "/api/v1/sys/health"
    n = metrics_mod._LOG_BOUND + 5
    for _ in range(n):
        metrics.request("GET", route, 403, 0.001)
    assert len(metrics._log) < metrics_mod._LOG_BOUND
    got = samples(metrics)
    labels = (("method", "GET"), ("route", route), ("status", "403"))
    assert got[("keysafe_http_requests_total", labels)] == n
    assert got[("keysafe_denials_total", (("reason", "forbidden"),))] == n
