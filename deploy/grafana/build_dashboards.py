"""The Grafana dashboards as code: ``python deploy/grafana/build_dashboards.py`` writes
deploy/grafana/dashboards/*.json (committed, provisioned by Grafana as files).

tests/deploy checks that the JSON is what this script writes, that every query names metrics the
services define, and runs every query against a real Prometheus scraping the real services.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

DATASOURCE = {"type": "prometheus", "uid": "ahunt-prometheus"}  # provisioning/datasources
OUT = Path(__file__).resolve().parent / "dashboards"
RATE = "$__rate_interval"


class Board:
    """Panels laid out left to right, 24 grid units per row."""

    def __init__(self, uid: str, title: str, description: str) -> None:
        self.uid, self.title, self.description = uid, title, description
        self.panels: list[dict[str, Any]] = []
        self.annotations: list[dict[str, Any]] = []
        self._x = self._y = self._row_h = 0

    def row(self, title: str) -> None:
        self._newline()
        self.panels.append(
            {
                "type": "row",
                "title": title,
                "collapsed": False,
                "id": len(self.panels) + 1,
                "gridPos": {"x": 0, "y": self._y, "w": 24, "h": 1},
                "panels": [],
            }
        )
        self._y += 1

    def _newline(self) -> None:
        if self._x:
            self._x, self._y, self._row_h = 0, self._y + self._row_h, 0

    def panel(
        self,
        title: str,
        targets: list[tuple[str, str]],
        *,
        kind: str = "timeseries",
        unit: str = "short",
        width: int = 12,
        height: int = 8,
        description: str = "",
        options: dict[str, Any] | None = None,
        custom: dict[str, Any] | None = None,
    ) -> None:
        """``targets``: (PromQL, legend) pairs."""
        if self._x + width > 24:
            self._newline()
        self.panels.append(
            {
                "id": len(self.panels) + 1,
                "type": kind,
                "title": title,
                "description": description,
                "datasource": DATASOURCE,
                "gridPos": {"x": self._x, "y": self._y, "w": width, "h": height},
                "fieldConfig": {
                    "defaults": {"unit": unit, "custom": custom or {}},
                    "overrides": [],
                },
                "options": options or {},
                "targets": [
                    {
                        "refId": chr(ord("A") + i),
                        "datasource": DATASOURCE,
                        "expr": expr,
                        "legendFormat": legend,
                        "range": True,
                    }
                    for i, (expr, legend) in enumerate(targets)
                ],
            }
        )
        self._x += width
        self._row_h = max(self._row_h, height)

    def annotation(self, name: str, expr: str, text: str, color: str) -> None:
        self.annotations.append(
            {
                "name": name,
                "datasource": DATASOURCE,
                "enable": True,
                "iconColor": color,
                "expr": expr,
                "step": "60s",
                "titleFormat": name,
                "textFormat": text,
                "useValueForTime": False,
            }
        )

    def to_json(self) -> dict[str, Any]:
        builtin = {
            "builtIn": 1,
            "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": True,
            "hide": True,
            "iconColor": "rgba(0, 211, 255, 1)",
            "name": "Annotations & Alerts",
            "type": "dashboard",
        }
        return {
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": ["ahunt"],
            "timezone": "utc",
            "schemaVersion": 39,
            "version": 1,
            "editable": True,
            "refresh": "30s",
            "time": {"from": "now-6h", "to": "now"},
            "annotations": {"list": [builtin, *self.annotations]},
            "templating": {"list": []},
            "links": [
                {
                    "type": "dashboards",
                    "tags": ["ahunt"],
                    "asDropdown": True,
                    "title": "ahunt dashboards",
                }
            ],
            "panels": self.panels,
        }


def quantiles(metric: str, by: str, what: str) -> list[tuple[str, str]]:
    """p50 and p99 of a histogram, per ``by`` label(s)."""
    group = f"le, {by}" if by else "le"
    legend = f"{{{{{by}}}}} " if by else ""
    return [
        (
            f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket[{RATE}])))",
            f"{legend}p{int(q * 100)}{what}",
        )
        for q in (0.5, 0.99)
    ]


STAT = {
    "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
    "colorMode": "value",
    "graphMode": "none",
}


def pipeline() -> Board:
    b = Board(
        "ahunt-pipeline",
        "ahunt / pipeline",
        "Alerts in, scores out: throughput, lag, latency and dead letters of the scorers.",
    )
    b.row("Services")
    b.panel(
        "Targets up",
        [('up{job=~"ahunt-.*"}', "{{job}} {{instance}}")],
        kind="state-timeline",
        width=16,
        height=6,
        description="1 = scraped, 0 = down (alert AhuntServiceDown)",
        options={"showValue": "never"},
    )
    b.panel(
        "Scorer replicas up",
        [('sum(up{job="ahunt-scorer"})', "replicas")],
        kind="stat",
        width=8,
        height=6,
        options=STAT,
    )
    b.row("Throughput and lag")
    b.panel(
        "Alerts per second",
        [
            (f"sum(rate(ahunt_scorer_alerts_consumed_total[{RATE}]))", "consumed"),
            (
                f"sum by (survey) (rate(ahunt_scorer_alerts_scored_total[{RATE}]))",
                "scored {{survey}}",
            ),
            (
                f"sum by (instance) (rate(ahunt_scorer_alerts_consumed_total[{RATE}]))",
                "consumed by {{instance}}",
            ),
        ],
        unit="ops",
    )
    b.panel(
        "Consumer lag per topic and partition",
        [
            (
                "max by (topic, partition) (ahunt_scorer_consumer_lag_messages)",
                "{{topic}} [{{partition}}]",
            ),
        ],
        description="Committed offset behind the high watermark; several replicas may report a "
        "partition they owned before a rebalance, hence max per partition.",
    )
    b.panel(
        "Consumer lag per topic",
        [
            (
                "sum by (topic) (max by (topic, partition) (ahunt_scorer_consumer_lag_messages))",
                "{{topic}}",
            ),
        ],
        width=12,
    )
    b.panel("Batch size", quantiles("ahunt_scorer_batch_size_alerts", "", " alerts"), width=12)
    b.row("Latency")
    b.panel(
        "Stage latency per batch (p50, p99)",
        quantiles("ahunt_scorer_stage_seconds", "stage", ""),
        unit="s",
    )
    b.panel(
        "Scoring thread CPU per alert, by stage",
        [
            (
                f"sum by (stage) (rate(ahunt_scorer_stage_cpu_seconds_total[{RATE}])) / "
                f"scalar(sum(rate(ahunt_scorer_alerts_consumed_total[{RATE}])))",
                "{{stage}}",
            ),
        ],
        unit="s",
        description="CPU seconds per consumed alert in each stage (time.thread_time of the "
        "scoring thread; on a shared node wall time includes waiting for a core). produce and "
        "commit run in librdkafka's threads and are not here.",
    )
    b.panel(
        "Producer latency windows (librdkafka, worst broker)",
        [
            (
                "max by (window, quantile) (ahunt_scorer_producer_latency_seconds)",
                "{{window}} {{quantile}}",
            ),
        ],
        unit="s",
        description="Only with KAFKA_STATISTICS_INTERVAL_MS > 0. int_latency: queued in the "
        "client before sending (high when the client's threads get no CPU); rtt: the broker's "
        "round trip; outbuf_latency: waiting for a free request slot.",
    )
    b.panel(
        "End-to-end latency (Kafka timestamp to commit)",
        quantiles("ahunt_scorer_end_to_end_seconds", "", ""),
        unit="s",
    )
    b.row("Dead letters")
    b.panel(
        "Dead letters per second by reason",
        [
            (f"sum by (reason) (rate(ahunt_scorer_dead_letters_total[{RATE}]))", "{{reason}}"),
        ],
        unit="ops",
    )
    b.panel(
        "Dead letters, share of input",
        [
            (
                f"sum(rate(ahunt_scorer_dead_letters_total[{RATE}])) "
                f"/ sum(rate(ahunt_scorer_alerts_consumed_total[{RATE}]))",
                "dead letters / consumed",
            ),
        ],
        unit="percentunit",
        description="alert AhuntDeadLetterSpike fires above 1%",
    )
    return b


def users_and_models() -> Board:
    b = Board(
        "ahunt-models",
        "ahunt / users and models",
        "Deliveries and labels per user, the model version timeline and retrain outcomes.",
    )
    b.annotation(
        "Model swaps",
        "sum by (survey) (increase(ahunt_scorer_model_swaps_total[2m])) > 0",
        "a scorer swapped in a new {{survey}} model",
        "blue",
    )
    b.annotation(
        "Retrain runs",
        "sum by (survey, outcome) (increase(ahunt_retrain_runs_total[2m])) > 0",
        "retrain {{survey}}: {{outcome}}",
        "orange",
    )
    b.row("Users")
    b.panel(
        "Deliveries per user",
        [
            (f"sum by (user) (rate(ahunt_scorer_published_total[{RATE}]))", "{{user}}"),
        ],
        unit="ops",
    )
    b.panel(
        "Deliveries by strategy",
        [
            (f"sum by (reason) (rate(ahunt_scorer_published_total[{RATE}]))", "{{reason}}"),
        ],
        unit="ops",
        width=6,
    )
    b.panel(
        "Users",
        [
            ("max(ahunt_scorer_users)", "scored for"),
            ("max(ahunt_feedback_users)", "with a profile (API)"),
        ],
        kind="stat",
        width=6,
        options=STAT,
    )
    b.panel(
        "Labels per second by label",
        [
            (f"sum by (label) (rate(ahunt_feedback_labels_total[{RATE}]))", "{{label}}"),
        ],
        unit="ops",
        description="What users answer; per-user counts are in Redis "
        "(ahunt:user:<user>:labels), not in metrics, to bound cardinality.",
    )
    b.panel(
        "Training labels per survey",
        [
            ("max by (survey) (ahunt_retrain_labels)", "{{survey}}"),
        ],
    )
    b.row("Models")
    b.panel(
        "Model version timeline (serving)",
        [
            ("max by (survey, version) (ahunt_scorer_model_info) > 0", "{{survey}} {{version}}"),
        ],
        kind="state-timeline",
        width=12,
        options={"showValue": "never", "mergeValues": True},
        description="Which version each survey's scorers serve; annotations mark swaps and "
        "retrain outcomes.",
    )
    b.panel(
        "Registry live version",
        [
            (
                "max by (survey, version) (ahunt_registry_live_version_info) > 0",
                "{{survey}} {{version}}",
            ),
        ],
        kind="state-timeline",
        width=12,
        options={"showValue": "never", "mergeValues": True},
    )
    b.panel(
        "Model swaps and refused versions",
        [
            (
                f"sum by (survey) (increase(ahunt_scorer_model_swaps_total[{RATE}]))",
                "swaps {{survey}}",
            ),
            (
                f"sum by (survey) (increase(ahunt_scorer_model_load_failures_total[{RATE}]))",
                "refused {{survey}}",
            ),
        ],
        width=8,
    )
    b.panel(
        "Retrain outcomes",
        [
            (
                f"sum by (survey, outcome) (increase(ahunt_retrain_runs_total[{RATE}]))",
                "{{survey}} {{outcome}}",
            ),
        ],
        width=8,
        custom={"drawStyle": "bars", "fillOpacity": 80, "stacking": {"mode": "normal"}},
    )
    b.panel(
        "Gate rejections by reason",
        [
            (
                f"sum by (survey, reason) (increase(ahunt_retrain_gate_rejections_total[{RATE}]))",
                "{{survey}} {{reason}}",
            ),
        ],
        width=8,
        custom={"drawStyle": "bars", "fillOpacity": 80},
    )
    b.panel(
        "Retrain duration by phase (p50, p99)",
        quantiles("ahunt_retrain_duration_seconds", "phase", ""),
        unit="s",
        width=8,
    )
    b.panel(
        "Since last successful retrain",
        [
            (
                "time() - max by (survey) (ahunt_retrain_last_success_timestamp_seconds > 0)",
                "{{survey}}",
            ),
        ],
        kind="stat",
        unit="s",
        width=8,
        options=STAT,
    )
    b.panel(
        "Consecutive retrain failures",
        [
            ("max by (survey) (ahunt_retrain_consecutive_failures)", "{{survey}}"),
        ],
        kind="stat",
        width=8,
        options=STAT,
        description="alert AhuntRetrainFailing fires at 3",
    )
    return b


def feedback() -> Board:
    b = Board(
        "ahunt-feedback",
        "ahunt / feedback API",
        "Request rates, latency and errors of the feedback API.",
    )
    b.panel(
        "Requests per second by route and status",
        [
            (
                f"sum by (route, method, status) (rate(ahunt_feedback_requests_total[{RATE}]))",
                "{{method}} {{route}} {{status}}",
            ),
        ],
        unit="reqps",
    )
    b.panel(
        "Server errors (5xx), share of requests",
        [
            (
                f'(sum(rate(ahunt_feedback_requests_total{{status=~"5.."}}[{RATE}])) or vector(0)) '
                f"/ sum(rate(ahunt_feedback_requests_total[{RATE}]))",
                "5xx",
            ),
            (
                f'(sum(rate(ahunt_feedback_requests_total{{status=~"4.."}}[{RATE}])) or vector(0)) '
                f"/ sum(rate(ahunt_feedback_requests_total[{RATE}]))",
                "4xx",
            ),
        ],
        unit="percentunit",
        description="alert AhuntFeedbackServerErrors fires above 5% per route",
    )
    b.panel(
        "Latency by route (p50, p99)",
        quantiles("ahunt_feedback_request_seconds", "route", ""),
        unit="s",
    )
    b.panel(
        "Label-store errors per second",
        [
            (f"sum(rate(ahunt_feedback_store_errors_total[{RATE}]))", "store errors"),
        ],
        unit="ops",
        description="Redis refused or failed a label write; the label was not "
        "acknowledged (alert AhuntFeedbackStoreErrors)",
    )
    b.panel(
        "Feedback events waiting for Kafka (outbox)",
        [
            ("sum(ahunt_feedback_outbox_events)", "waiting"),
            (f"sum(rate(ahunt_feedback_events_published_total[{RATE}]))", "published per second"),
            (
                f"sum(rate(ahunt_feedback_publish_errors_total[{RATE}]))",
                "publish errors per second",
            ),
        ],
        description="Labels are durable in Redis first; the outbox then publishes them to "
        "ahunt.feedback (the replayable label log).",
    )
    b.panel(
        "Redis durable (AOF, fsync always)",
        [
            ("min(ahunt_feedback_redis_durable)", "durable"),
        ],
        kind="stat",
        options=STAT,
        description="0: Redis would lose acknowledged labels on a "
        "crash (alert AhuntFeedbackRedisNotDurable)",
    )
    return b


BOARDS = (pipeline, users_and_models, feedback)


def render() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    out = {}
    for build in BOARDS:
        board = build().to_json()
        out[f"{board['uid']}.json"] = json.dumps(board, indent=2, sort_keys=True) + "\n"
    return out


def main() -> int:
    OUT.mkdir(exist_ok=True)
    for name, text in render().items():
        (OUT / name).write_text(text)
        print(f"wrote {OUT / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
