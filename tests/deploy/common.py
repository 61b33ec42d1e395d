"""What the deploy tests and scripts/validate-deploy share: the files under deploy/ and the metric names.

The loaders are cached: treat what they return as read-only.
"""

from __future__ import annotations

import functools
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
# The broker's definitions and start script: Kubernetes' ConfigMap files, which compose mounts too.
BROKER = DEPLOY / "k8s" / "rabbitmq"
SERVICES = {"intake": 8001, "routing": 8002, "reporting": 8003}

# Metrics the services are to expose but do not all expose yet (named in the team's brief).
PLANNED_METRICS = {
    "baove_incidents_reported_total": ("category", "urgency", "channel"),
    "baove_assignments_created_total": ("unit_type", "role"),
    "baove_assignment_ack_seconds": ("unit_type",),
    "baove_assignments_overdue": ("unit_type",),
    "baove_escalations_total": (),
    "baove_dead_letters": ("queue",),
    "baove_routing_decision_seconds": (),
    "baove_report_generation_seconds": (),
}
HISTOGRAMS = {"baove_assignment_ack_seconds", "baove_routing_decision_seconds", "baove_report_generation_seconds"}

# RabbitMQ 3.10's Prometheus plugin (checked against a real 3.10.8 node by test_rabbitmq_broker.py).
RABBITMQ_METRICS = {
    "rabbitmq_detailed_queue_consumers",
    "rabbitmq_detailed_queue_messages",
    "rabbitmq_detailed_queue_messages_ready",
    "rabbitmq_detailed_queue_messages_unacked",
    "rabbitmq_alarms_memory_used_watermark",
    "rabbitmq_alarms_free_disk_space_watermark",
    "rabbitmq_alarms_file_descriptor_limit",
}

# Grafana's variables, replaced by plausible values so promtool can parse the expressions.
GRAFANA_VARIABLES = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "6h",
    "${service}": "intake|routing|reporting",
    "$service": "intake|routing|reporting",
}

_PROMQL_WORDS = {
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile", "count_values",
    "group", "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool",
    "offset", "rate", "irate", "increase", "delta", "idelta", "deriv", "histogram_quantile", "absent",
    "absent_over_time", "label_replace", "label_join", "clamp_min", "clamp_max", "abs", "vector", "scalar",
    "time", "sort", "sort_desc", "round", "ceil", "floor", "max_over_time", "min_over_time", "avg_over_time",
    "sum_over_time", "count_over_time", "last_over_time", "changes", "resets", "predict_linear", "inf", "nan",
}


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def load_yaml_all(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@functools.cache
def compose() -> dict:
    return load_yaml(DEPLOY / "compose" / "compose.yaml")


@functools.cache
def kustomization() -> dict:
    return load_yaml(DEPLOY / "k8s" / "kustomization.yaml")


@functools.cache
def k8s_documents() -> list[dict]:
    """The resources kustomization.yaml lists, as written (generated ConfigMaps and Secrets aside)."""
    docs: list[dict] = []
    for name in kustomization()["resources"]:
        docs.extend(load_yaml_all(DEPLOY / "k8s" / name))
    return docs


def k8s_find(kind: str, name: str) -> dict:
    [doc] = [d for d in k8s_documents() if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


@functools.cache
def definitions() -> dict:
    return json.loads((BROKER / "definitions.json").read_text())


@functools.cache
def dashboards() -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))}


def _panels(panels: list[dict]):
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def dashboard_panels(dashboard: dict) -> list[dict]:
    return list(_panels(dashboard.get("panels", [])))


def dashboard_exprs() -> list[tuple[str, str, str]]:
    """(dashboard file, panel title / refId, expr) for every Prometheus query of every dashboard."""
    out = []
    for name, dashboard in dashboards().items():
        for panel in dashboard_panels(dashboard):
            for target in panel.get("targets", []):
                if target.get("expr"):
                    out.append((name, f"{panel['title']} / {target['refId']}", target["expr"]))
    return out


@functools.cache
def alert_rules() -> list[dict]:
    return [rule for group in load_yaml(DEPLOY / "prometheus" / "alerts.yml")["groups"] for rule in group["rules"]]


def for_promtool(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


def metric_names(expr: str) -> set[str]:
    """The metric names an expression reads (strings, label matchers, grouping and ranges removed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', for_promtool(expr))
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    names = set(re.findall(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)", text))
    return {n for n in names if n not in _PROMQL_WORDS and not re.fullmatch(r"\d+[smhdwy]?", n)}


@functools.cache
def _service_registry():
    """A registry holding every metric shared/metrics.py defines and faststream's middleware adds."""
    from faststream.rabbit.prometheus import RabbitPrometheusMiddleware

    from shared import metrics

    registry = metrics.new_registry()
    for value in vars(metrics).values():
        if isinstance(value, type) and value.__module__ == metrics.__name__ and hasattr(value, "create"):
            value.create(registry)
    metrics.HttpMetricsMiddleware(app=None, registry=registry)
    RabbitPrometheusMiddleware(registry=registry, app_name="deploy-test")
    return registry


def exposed_metric_names() -> set[str]:
    """Every sample name the services' registries expose today (_bucket, _total etc. included)."""
    return set(_service_registry()._names_to_collectors)  # noqa: SLF001


@functools.cache
def metric_labels() -> dict[str, set[str]]:
    """The labels of every known sample name, besides the job and instance labels of the target."""
    registry = _service_registry()
    labels: dict[str, set[str]] = {"up": set()}
    labels |= {name: {"vhost", "queue"} for name in RABBITMQ_METRICS if "detailed_queue" in name}
    labels |= {name: set() for name in RABBITMQ_METRICS if "alarms" in name}
    for name, planned in PLANNED_METRICS.items():
        for sample in (name, f"{name}_bucket", f"{name}_sum", f"{name}_count"):
            labels[sample] = set(planned) | ({"le"} if sample.endswith("_bucket") else set())
    for sample, collector in registry._names_to_collectors.items():  # noqa: SLF001
        labels[sample] = set(getattr(collector, "_labelnames", ())) | ({"le"} if sample.endswith("_bucket") else set())
    return labels


def grouping_labels(expr: str) -> set[str]:
    """The labels an expression groups by or matches on."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', for_promtool(expr))
    found = set()
    for group in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", text):
        found |= {label.strip() for label in group.split(",") if label.strip()}
    for matchers in re.findall(r"\{([^}]*)\}", text):
        found |= set(re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", matchers))
    return found


def planned_metric_names() -> set[str]:
    names = set()
    for name in PLANNED_METRICS:
        names.add(name)
        if name in HISTOGRAMS:
            names.update({f"{name}_bucket", f"{name}_sum", f"{name}_count"})
    return names


def write_promtool_inputs(out: Path) -> None:
    """Files for promtool: the dashboards' queries as recording rules, and the alerts for the alert tests.

    promtool test rules compares annotations too; the tests assert labels and timing, so they run
    against a copy of alerts.yml without annotations (promtool check rules checks the templates).
    """
    out.mkdir(parents=True, exist_ok=True)
    rules = [
        {"record": f"dashboard:query_{i}", "expr": for_promtool(expr)}
        for i, (_name, _where, expr) in enumerate(dashboard_exprs())
    ]
    (out / "dashboard-rules.yml").write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    alerts = load_yaml(DEPLOY / "prometheus" / "alerts.yml")
    for group in alerts["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (out / "alerts.yml").write_text(yaml.safe_dump(alerts))
    (out / "alerts.test.yml").write_text((DEPLOY / "prometheus" / "alerts.test.yml").read_text())


if __name__ == "__main__":
    # python -m tests.deploy.common promtool-inputs DIR
    if len(sys.argv) == 3 and sys.argv[1] == "promtool-inputs":
        write_promtool_inputs(Path(sys.argv[2]))
    else:
        sys.exit("usage: python -m tests.deploy.common promtool-inputs DIR")
