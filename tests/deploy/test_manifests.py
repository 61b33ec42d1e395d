"""deploy/Dockerfile, deploy/compose and deploy/k8s agree with the services and with each other.

Schemas are checked by scripts/validate-deploy (docker compose config, the compose-spec schema,
kubernetes-validate); these tests check what a schema cannot: names, ports, users and secrets.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest

from tests.deploy.common import DEPLOY, ROOT, SERVICES, compose, definitions, k8s_documents, k8s_find, kustomization

SECRET_REF = re.compile(r"\$\{([A-Z0-9_]+):\?[^}]+\}")


def env_example_names() -> set[str]:
    text = (DEPLOY / "compose" / ".env.example").read_text()
    return set(re.findall(r"^([A-Z0-9_]+)=$", text, re.MULTILINE))


class TestDockerfile:
    text = (DEPLOY / "Dockerfile").read_text()

    def test_it_builds_on_python_3_11_slim(self):
        assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim", self.text, re.MULTILINE)
        assert self.text.count("FROM ${PYTHON_IMAGE}") == 2

    def test_it_installs_the_pinned_requirements_then_the_project_without_dependencies(self):
        assert "pip install --no-compile -r /src/requirements.txt" in self.text
        assert "pip install --no-compile --no-deps /src" in self.text

    def test_it_runs_as_a_numeric_non_root_user_the_same_as_on_kubernetes(self):
        [user] = re.findall(r"^USER (\d+):(\d+)$", self.text, re.MULTILINE)
        assert user == ("10001", "10001")
        for name in SERVICES:
            pod = k8s_find("Deployment", name)["spec"]["template"]["spec"]["securityContext"]
            assert (pod["runAsUser"], pod["runAsGroup"], pod["runAsNonRoot"]) == (10001, 10001, True)

    def test_it_checks_health_and_runs_the_baove_command(self):
        assert re.search(r"^HEALTHCHECK .*baove-healthcheck", self.text, re.MULTILINE)
        assert 'ENTRYPOINT ["baove"]' in self.text
        assert "EXPOSE 8001 8002 8003" in self.text

    def test_what_it_copies_exists_and_is_not_ignored(self):
        ignore = (DEPLOY / "Dockerfile.dockerignore").read_text()
        for source in ("requirements.txt", "pyproject.toml", "shared", "services", "deploy/docker/healthcheck.py"):
            assert (ROOT / source).exists(), source
            assert f"!{source}" in ignore or f"!{source}/" in ignore, source


class TestCompose:
    @pytest.mark.parametrize("name", sorted(SERVICES))
    def test_each_service_runs_without_migrating_after_the_migration_and_its_dependencies(self, name):
        service = compose()["services"][name]
        assert service["command"] == ["run", name, "--no-migrate"]
        assert service["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"},
            "rabbitmq": {"condition": "service_healthy"},
            "postgres": {"condition": "service_healthy"},
        }
        assert "healthcheck" in service and service["read_only"] is True

    @pytest.mark.parametrize("name", sorted(SERVICES))
    def test_each_service_listens_on_all_interfaces_on_its_port(self, name):
        env = compose()["services"][name]["environment"]
        assert env[f"BAOVE_{name.upper()}_HOST"] == "0.0.0.0"
        assert env[f"BAOVE_{name.upper()}_PORT"] == str(SERVICES[name])
        assert compose()["services"][name]["ports"] == [f"${{BAOVE_PUBLISH_ADDRESS:-127.0.0.1}}:{SERVICES[name]}:{SERVICES[name]}"]
        assert env["BAOVE_ENV"] == "prod"

    @pytest.mark.parametrize("name", sorted(SERVICES))
    def test_each_service_uses_its_own_broker_user_and_database(self, name):
        env = {k: SECRET_REF.sub("secret", v) for k, v in compose()["services"][name]["environment"].items()}
        amqp = urlsplit(env["BAOVE_AMQP_URL"])
        assert (amqp.scheme, amqp.username, amqp.hostname, amqp.port, amqp.path) == ("amqp", name, "rabbitmq", 5672, "/baove")
        database = urlsplit(env[f"BAOVE_{name.upper()}_DATABASE_URL"])
        assert (database.username, database.hostname, database.path) == (name, "postgres", f"/baove_{name}")
        other = {f"BAOVE_{o.upper()}_DATABASE_URL" for o in SERVICES if o != name}
        assert not other & set(env), "a service gets no other service's database"
        # The token store as the service's own role (its grants there: shared/auth_roles.py), never as its owner.
        auth = urlsplit(env["BAOVE_AUTH_DATABASE_URL"])
        assert (auth.username, auth.hostname, auth.path) == (name, "postgres", "/baove_auth")
        assert "BAOVE_AUTH_ADMIN_DATABASE_URL" not in env

    def test_only_the_migration_has_the_token_stores_owner(self):
        env = {k: SECRET_REF.sub("secret", v) for k, v in compose()["services"]["migrate"]["environment"].items()}
        admin = urlsplit(env["BAOVE_AUTH_ADMIN_DATABASE_URL"])
        assert (admin.username, admin.path) == ("baove_auth", "/baove_auth")
        owners = {n for n, svc in compose()["services"].items() if "BAOVE_AUTH_ADMIN_DATABASE_URL" in (svc.get("environment") or {})}
        assert owners == {"migrate"}
        assert all("baove_auth:" not in v for n in SERVICES for v in compose()["services"][n]["environment"].values())

    def test_the_databases_the_urls_name_are_those_the_init_script_creates(self):
        script = (DEPLOY / "compose" / "postgres" / "init-databases.sh").read_text()
        created = set(re.findall(r"^create (\S+) (\S+) ", script, re.MULTILINE))
        assert created == {("baove_auth", "baove_auth"), ("console", "baove_console")} | {(n, f"baove_{n}") for n in SERVICES}

    def test_the_console_serves_on_8004_with_its_own_database_and_the_apis_by_name(self):
        console = compose()["services"]["console"]
        assert console["command"] == ["run", "console", "--no-migrate"]
        assert console["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
        assert {n for n in SERVICES if console["depends_on"].get(n) == {"condition": "service_healthy"}} == set(SERVICES)
        assert console["ports"] == ["${BAOVE_PUBLISH_ADDRESS:-127.0.0.1}:8004:8004"]
        assert "healthcheck" in console and console["read_only"] is True
        env = {k: SECRET_REF.sub("secret", v) for k, v in console["environment"].items()}
        assert (env["BAOVE_CONSOLE_HOST"], env["BAOVE_CONSOLE_PORT"], env["BAOVE_ENV"]) == ("0.0.0.0", "8004", "prod")
        database = urlsplit(env["BAOVE_CONSOLE_DATABASE_URL"])
        assert (database.username, database.hostname, database.path) == ("console", "postgres", "/baove_console")
        for name, port in SERVICES.items():
            assert env[f"BAOVE_CONSOLE_{name.upper()}_URL"] == f"http://{name}:{port}"
        assert not {"BAOVE_AMQP_URL", "BAOVE_AUTH_DATABASE_URL"} & set(env), "no broker user, no token store"

    def test_every_password_is_a_required_reference_never_a_value(self):
        def values(node):
            if isinstance(node, dict):
                for value in node.values():
                    yield from values(value)
            elif isinstance(node, list):
                for value in node:
                    yield from values(value)
            elif isinstance(node, str):
                yield node

        for value in values(compose()):
            if re.search(r"://[^/@]+@", value):
                assert SECRET_REF.search(value), value
        for name, service in compose()["services"].items():
            for key, value in (service.get("environment") or {}).items():
                if "PASSWORD" in key:
                    assert SECRET_REF.fullmatch(value), (name, key)

    def test_every_required_variable_is_in_the_env_example_and_empty_there(self):
        lines = (DEPLOY / "compose" / "compose.yaml").read_text().splitlines()
        text = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
        assert set(SECRET_REF.findall(text)) == env_example_names()

    def test_the_broker_gets_a_password_for_every_user_in_the_definitions(self):
        env = compose()["services"]["rabbitmq"]["environment"]
        users = {u["name"] for u in definitions()["users"]}
        assert set(env) == {f"BAOVE_RABBITMQ_PASSWORD_{u.upper()}" for u in users}

    def test_the_broker_keeps_its_node_name_and_the_files_it_mounts_exist(self):
        rabbitmq = compose()["services"]["rabbitmq"]
        # The node name (rabbit@<hostname>) names its data directory: it must not change on recreate.
        assert rabbitmq["hostname"] == "rabbitmq"
        assert rabbitmq["image"] == "rabbitmq:3.10-management"
        for service in compose()["services"].values():
            for volume in service.get("volumes", []):
                source = volume.split(":")[0]
                if source.startswith("."):
                    assert (DEPLOY / "compose" / source).resolve().exists(), volume


class TestKubernetes:
    def test_every_manifest_is_in_the_kustomization(self):
        listed = set(kustomization()["resources"])
        generated = {f for g in kustomization()["configMapGenerator"] for f in g["files"]}
        on_disk = {
            str(p.relative_to(DEPLOY / "k8s")) for p in (DEPLOY / "k8s").rglob("*.yaml") if p.name != "kustomization.yaml"
        }
        assert on_disk == listed
        assert all((DEPLOY / "k8s" / f).exists() for f in generated)

    def test_the_secrets_are_generated_from_files_that_are_never_committed(self):
        for generator in kustomization()["secretGenerator"]:
            for env in generator["envs"]:
                assert (DEPLOY / "k8s" / f"{env}.example").exists(), env
                assert not (DEPLOY / "k8s" / env).exists() or "*.env" in (DEPLOY / "k8s" / "secrets" / ".gitignore").read_text()

    def secret_keys(self, name: str) -> set[str]:
        [generator] = [g for g in kustomization()["secretGenerator"] if g["name"] == name]
        text = "".join((DEPLOY / "k8s" / f"{env}.example").read_text() for env in generator["envs"])
        return set(re.findall(r"^([A-Z0-9_]+)=", text, re.MULTILINE))

    def secret_refs(self, pod_spec: dict) -> set[tuple[str, str]]:
        refs = set()
        for container in pod_spec["containers"]:
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    refs.add((ref["name"], ref["key"]))
        for volume in pod_spec.get("volumes", []):
            if "secret" in volume:
                refs |= {(volume["secret"]["secretName"], item["key"]) for item in volume["secret"].get("items", [])}
        return refs

    @pytest.mark.parametrize("name", sorted(SERVICES))
    def test_each_deployment_runs_its_service_with_probes_limits_and_no_root(self, name):
        spec = k8s_find("Deployment", name)["spec"]["template"]["spec"]
        [container] = spec["containers"]
        assert container["args"] == ["run", name, "--no-migrate"]
        assert container["ports"] == [{"name": "http", "containerPort": SERVICES[name]}]
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert set(container["resources"]) == {"requests", "limits"}
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["terminationGracePeriodSeconds"] > 20, "above the services' graceful_timeout"

    def test_the_console_deployment_serves_on_8004_with_only_its_own_database(self):
        spec = k8s_find("Deployment", "console")["spec"]["template"]["spec"]
        [container] = spec["containers"]
        assert container["args"] == ["run", "console", "--no-migrate"]
        assert container["ports"] == [{"name": "http", "containerPort": 8004}]
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert self.secret_refs(spec) == {("baove-database", "CONSOLE_DATABASE_URL")}
        data = k8s_find("ConfigMap", "baove-config")["data"]
        assert (data["BAOVE_CONSOLE_HOST"], data["BAOVE_CONSOLE_PORT"]) == ("0.0.0.0", "8004")
        for name, port in SERVICES.items():
            assert data[f"BAOVE_CONSOLE_{name.upper()}_URL"] == f"http://{name}:{port}"
        service = k8s_find("Service", "console")["spec"]
        assert service["ports"] == [{"name": "http", "port": 8004, "targetPort": "http"}]
        assert service["selector"] == k8s_find("Deployment", "console")["spec"]["selector"]["matchLabels"]

    @pytest.mark.parametrize("name", sorted(SERVICES))
    def test_each_deployment_uses_its_own_broker_user_and_database(self, name):
        spec = k8s_find("Deployment", name)["spec"]["template"]["spec"]
        env = {e["name"]: e for e in spec["containers"][0]["env"]}
        assert env["BAOVE_AMQP_URL"]["value"] == f"amqp://{name}:$(RABBITMQ_PASSWORD)@rabbitmq:5672/baove"
        assert env["RABBITMQ_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "baove-rabbitmq", "key": f"{name.upper()}_PASSWORD"}
        assert self.secret_refs(spec) == {
            ("baove-database", f"{name.upper()}_AUTH_DATABASE_URL"),
            ("baove-database", f"{name.upper()}_DATABASE_URL"),
            ("baove-rabbitmq", f"{name.upper()}_PASSWORD"),
        }

    def test_the_config_map_makes_every_service_listen_on_all_interfaces(self):
        data = k8s_find("ConfigMap", "baove-config")["data"]
        assert data["BAOVE_ENV"] == "prod"
        for name, port in SERVICES.items():
            assert data[f"BAOVE_{name.upper()}_HOST"] == "0.0.0.0"
            assert data[f"BAOVE_{name.upper()}_PORT"] == str(port)

    def test_every_secret_key_referenced_is_in_the_example_files(self):
        for doc in k8s_documents():
            if doc["kind"] in {"Deployment", "StatefulSet", "Job"}:
                for secret, key in self.secret_refs(doc["spec"]["template"]["spec"]):
                    assert key in self.secret_keys(secret), (doc["metadata"]["name"], secret, key)

    def test_the_migration_job_migrates_every_database(self):
        spec = k8s_find("Job", "baove-migrate")["spec"]["template"]["spec"]
        assert spec["containers"][0]["args"] == ["migrate"]
        services_auth = {f"{n.upper()}_AUTH_DATABASE_URL" for n in SERVICES}
        assert self.secret_refs(spec) == {("baove-database", k) for k in self.secret_keys("baove-database") - services_auth}
        assert ("baove-database", "AUTH_ADMIN_DATABASE_URL") in self.secret_refs(spec)

    @pytest.mark.parametrize("name", sorted(SERVICES))
    def test_each_service_and_autoscaler_points_at_its_deployment(self, name):
        service = k8s_find("Service", name)["spec"]
        assert service["ports"] == [{"name": "http", "port": SERVICES[name], "targetPort": "http"}]
        assert service["selector"] == k8s_find("Deployment", name)["spec"]["selector"]["matchLabels"]
        hpa = k8s_find("HorizontalPodAutoscaler", name)
        assert hpa["apiVersion"] == "autoscaling/v2"
        assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        assert hpa["spec"]["minReplicas"] >= 2

    def test_rabbitmq_is_a_three_node_cluster_behind_a_headless_service_with_a_disruption_budget(self):
        sts = k8s_find("StatefulSet", "rabbitmq")
        assert sts["spec"]["replicas"] == 3
        assert sts["spec"]["template"]["spec"]["containers"][0]["image"] == "rabbitmq:3.10-management"
        headless = k8s_find("Service", sts["spec"]["serviceName"])["spec"]
        assert headless["clusterIP"] == "None" and headless["publishNotReadyAddresses"] is True
        labels = sts["spec"]["template"]["metadata"]["labels"]
        assert k8s_find("PodDisruptionBudget", "rabbitmq")["spec"] == {
            "maxUnavailable": 1, "selector": {"matchLabels": {"app.kubernetes.io/name": labels["app.kubernetes.io/name"]}}
        }
        conf = (DEPLOY / "k8s" / "rabbitmq" / "rabbitmq.conf").read_text()
        assert f"cluster_formation.k8s.service_name = {sts['spec']['serviceName']}" in conf
        assert f"hostname_suffix = .{sts['spec']['serviceName']}.{kustomization()['namespace']}.svc.cluster.local" in conf

    def test_every_broker_user_gets_its_password_from_the_secret(self):
        spec = k8s_find("StatefulSet", "rabbitmq")["spec"]["template"]["spec"]
        env = {e["name"] for e in spec["containers"][0]["env"]}
        users = {u["name"] for u in definitions()["users"]}
        assert {f"BAOVE_RABBITMQ_PASSWORD_{u.upper()}" for u in users} <= env
        assert ("baove-rabbitmq", "ERLANG_COOKIE") in self.secret_refs(spec)
