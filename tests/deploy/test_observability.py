"""deploy/prometheus and deploy/grafana: what is scraped, what alerts say, what the dashboard reads.

PromQL syntax and the alerts' behaviour are checked by promtool in scripts/validate-deploy.
"""

from __future__ import annotations

import pytest

from shared.settings import IntakeSettings, ReportingSettings, RoutingSettings
from tests.deploy.common import (
    DEPLOY,
    PLANNED_METRICS,
    RABBITMQ_METRICS,
    SERVICES,
    alert_rules,
    dashboard_exprs,
    dashboard_panels,
    dashboards,
    exposed_metric_names,
    for_promtool,
    grouping_labels,
    load_yaml,
    metric_labels,
    metric_names,
    planned_metric_names,
)

KNOWN = {"up"} | RABBITMQ_METRICS


def prometheus() -> dict:
    return load_yaml(DEPLOY / "prometheus" / "prometheus.yml")


def job(name: str) -> dict:
    [found] = [j for j in prometheus()["scrape_configs"] if j["job_name"] == name]
    return found


class TestScraping:
    @pytest.mark.parametrize(
        ("service", "settings"), [("intake", IntakeSettings), ("routing", RoutingSettings), ("reporting", ReportingSettings)]
    )
    def test_each_service_is_scraped_on_its_port_under_its_own_name(self, service, settings):
        port = settings.model_fields["port"].default
        assert port == SERVICES[service]
        assert job(service)["static_configs"] == [{"targets": [f"{service}:{port}"]}]
        assert job(service).get("metrics_path", "/metrics") == "/metrics"

    def test_rabbitmq_is_scraped_for_node_and_per_queue_metrics_of_the_baove_vhost(self):
        assert job("rabbitmq")["static_configs"] == [{"targets": ["rabbitmq:15692"]}]
        queues = job("rabbitmq-queues")
        assert queues["metrics_path"] == "/metrics/detailed"
        assert queues["params"] == {"vhost": ["baove"], "family": ["queue_coarse_metrics", "queue_consumer_count"]}

    def test_the_alert_rules_are_loaded(self):
        assert prometheus()["rule_files"] == ["alerts.yml"]


class TestAlerts:
    REQUIRED = {
        "BaoveAssignmentsOverdue", "BaoveDeadLettersPresent", "BaoveQueueWithoutConsumers",
        "BaoveOutboxLagging", "BaoveHttpErrors", "BaoveServiceDown",
    }

    def test_the_alerts_the_operators_asked_for_exist(self):
        assert {rule["alert"] for rule in alert_rules()} >= self.REQUIRED

    @pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: r["alert"])
    def test_every_alert_says_what_it_means_and_what_to_do(self, rule):
        annotations = rule["annotations"]
        assert set(annotations) >= {"summary", "description", "runbook"}
        assert len(annotations["description"]) > 60 and len(annotations["runbook"]) > 60
        assert rule["labels"]["severity"] in {"critical", "warning"}
        assert rule["labels"]["audience"] in {"operations", "child-protection"}

    @pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: r["alert"])
    def test_every_alert_is_tested_with_promtool(self, rule):
        assert f"alertname: {rule['alert']}" in (DEPLOY / "prometheus" / "alerts.test.yml").read_text()


class TestDashboard:
    def test_the_dashboard_is_provisioned_from_its_folder(self):
        provider = load_yaml(DEPLOY / "grafana" / "provisioning" / "dashboards" / "baove.yaml")["providers"][0]
        assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
        [source] = load_yaml(DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yaml")["datasources"]
        assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"

    @pytest.mark.parametrize("name", sorted(dashboards()))
    def test_the_dashboard_has_a_stable_uid_and_unique_panel_ids(self, name):
        dashboard = dashboards()[name]
        assert dashboard["uid"] and dashboard["title"]
        ids = [p["id"] for p in dashboard_panels(dashboard)]
        assert len(ids) == len(set(ids))

    @pytest.mark.parametrize("name", sorted(dashboards()))
    def test_every_panel_queries_the_selected_prometheus(self, name):
        dashboard = dashboards()[name]
        assert any(v["name"] == "datasource" and v["type"] == "datasource" for v in dashboard["templating"]["list"])
        for panel in dashboard_panels(dashboard):
            if panel["type"] == "row":
                continue
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
            assert panel["targets"], panel["title"]

    def test_the_dashboard_covers_red_casework_and_delivery(self):
        read = set().union(*(metric_names(expr) for _, _, expr in dashboard_exprs()))
        assert {
            "baove_http_requests_total", "baove_http_request_duration_seconds_bucket",
            "baove_incidents_reported_total", "baove_assignments_created_total", "baove_assignment_ack_seconds_bucket",
            "baove_assignments_overdue", "baove_escalations_total", "baove_outbox_backlog",
            "baove_outbox_oldest_age_seconds", "baove_dead_letters", "faststream_received_processed_messages_total",
        } <= read

    def test_grafana_variables_are_replaced_for_promtool(self):
        for _, where, expr in dashboard_exprs():
            assert "$__" not in for_promtool(expr) and "$service" not in for_promtool(expr), where


class TestMetricNames:
    """Every metric read by an alert or a panel is one the services or RabbitMQ expose (or will)."""

    def queries(self):
        yield from ((f"alert {r['alert']}", r["expr"]) for r in alert_rules())
        yield from ((f"{name}: {where}", expr) for name, where, expr in dashboard_exprs())

    def test_every_metric_read_is_known(self):
        known = KNOWN | exposed_metric_names() | planned_metric_names()
        unknown = {(where, name) for where, expr in self.queries() for name in metric_names(expr) - known}
        assert not unknown

    def test_every_label_grouped_or_matched_on_belongs_to_the_metric_read(self):
        labels = metric_labels()
        wrong = set()
        for where, expr in self.queries():
            names = metric_names(expr)
            if len(names) != 1:
                continue  # an expression joining several metrics is checked by promtool test rules
            [name] = names
            extra = grouping_labels(expr) - labels[name] - {"job", "instance"}
            if extra:
                wrong.add((where, name, tuple(sorted(extra))))
        assert not wrong

    def test_the_planned_metrics_that_exist_have_the_planned_labels(self):
        labels = metric_labels()
        exposed = exposed_metric_names()
        for name, planned in PLANNED_METRICS.items():
            if name in exposed:
                assert set(planned) <= labels[name], name

    def test_the_extraction_finds_metric_names_and_nothing_else(self):
        expr = (
            'histogram_quantile(0.95, sum by (le, job) (rate(baove_http_request_duration_seconds_bucket'
            '{job=~"$service", route!~"/healthz"}[$__rate_interval]))) / on(job) up'
        )
        assert metric_names(expr) == {"baove_http_request_duration_seconds_bucket", "up"}
