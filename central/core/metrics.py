"""What central counts as it works, for ``/metrics`` (Prometheus text format).

One ``Metrics`` per app, with its own registry: tests build many apps in one process, and a
process-wide registry would mix their counts. The ingest counts what it stores and how late it is
(``observe_stored``); the HTTP middleware times each request by its route template, never by its
raw path (``/schools/s1/…`` and ``/schools/s2/…`` are one series, and a scanner's made-up paths do
not make new ones). Figures that are state rather than flow (gates online, queues, incidents,
notifications waiting) are read from the database at each scrape (``central/api/metrics.py``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

#: seconds from a kiosk's event to central's commit: a gate online is well under a second, one
#: offline for a day drains its backlog with lags of hours
LAG_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600)
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
#: the route label of a request no route matched (404s of scanners)
UNMATCHED = "<unmatched>"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.events_stored = Counter(
            "schoolgate_events_stored", "Kiosk events stored by the ingest (rate() gives events per second).",
            registry=self.registry,
        )
        self.ingest_lag = Histogram(
            "schoolgate_ingest_lag_seconds", "Seconds from an event's time at the kiosk to its commit at central.",
            buckets=LAG_BUCKETS, registry=self.registry,
        )
        self.http_latency = Histogram(
            "schoolgate_http_request_duration_seconds", "HTTP request duration by method, route template and status.",
            ["method", "route", "status"], buckets=HTTP_BUCKETS, registry=self.registry,
        )

    def observe_stored(self, rows: Iterable[dict[str, Any]], committed_at: datetime) -> None:
        """Count stored event rows (``ingest.event_row``) and how long after their time they were committed."""
        count = 0
        for row in rows:
            count += 1
            # A kiosk clock ahead of central's gives a negative lag: 0, not a sample below every bucket.
            self.ingest_lag.observe(max((committed_at - row["at"]).total_seconds(), 0.0))
        if count:
            self.events_stored.inc(count)
