"""The operations files in deploy/: Prometheus config, compose stack, Dockerfile, Kubernetes.

Structure is checked by parsing (PyYAML), behaviour where it can be run here: promtool checks the
Prometheus config, the container healthcheck commands run against a local HTTP server, and
``docker compose config`` (or the standalone ``docker-compose``) resolves the stack when a
compose CLI is installed. Dashboard and alert rules: see test_deploy_metrics.py.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

from streams.settings import Settings
from tests.support.deploy import (
    COMPOSE,
    DEPLOY,
    DOCKERFILE,
    K8S,
    PROM_CONFIG,
    REPO,
    RULES,
    TOPIC_SUFFIXES,
    PromTools,
    promtool,
)


def test_promtool_check_config(prom_tools: PromTools) -> None:
    proc = promtool(prom_tools, "check", "config", str(PROM_CONFIG))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 rule files found" in proc.stdout


# --------------------------------------------------------------------------------------------
# Prometheus config and docker compose


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def worker_services(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in doc["services"].items()
            if svc.get("build", {}).get("dockerfile") == "deploy/Dockerfile"}


def settings_env_names() -> set[str]:
    return {"JOURNEY_" + f.name.upper() for f in fields(Settings)}


def test_prometheus_scrapes_the_compose_workers() -> None:
    config = yaml.safe_load(PROM_CONFIG.read_text())
    assert config["rule_files"] == [RULES.name]
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "journey")
    targets = {t for sc in job["static_configs"] for t in sc["targets"]}
    workers = worker_services(compose())
    port = Settings().web_port
    assert targets == {f"{name}:{port}" for name in workers}


def test_compose_kafka_runs_in_kraft_mode() -> None:
    kafka = compose()["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = kafka["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert str(env["KAFKA_NODE_ID"]) == "1"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka:9093"
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] == "CONTROLLER"
    assert "CONTROLLER://:9093" in env["KAFKA_LISTENERS"]
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", env["CLUSTER_ID"])  # a base64 UUID
    assert not [k for k in env if "ZOOKEEPER" in k]
    assert "healthcheck" in kafka


def test_compose_topic_init_creates_every_topic() -> None:
    doc = compose()
    init = doc["services"]["topics-init"]
    assert init["image"] == doc["services"]["kafka"]["image"]
    assert init["restart"] == "no"
    assert init["depends_on"]["kafka"]["condition"] == "service_healthy"
    script = "\n".join(init["command"])
    assert "kafka-topics.sh" in script and "--create --if-not-exists" in script
    loop = re.search(r"for name in ([^;]+);", script)
    assert loop and set(loop.group(1).split()) == set(TOPIC_SUFFIXES)
    assert '"$${PREFIX}$${name}"' in script
    assert '"$${APP_ID}-users-changelog" --config cleanup.policy=compact' in script
    env = init["environment"]
    assert env["PREFIX"] == f"${{JOURNEY_TOPIC_PREFIX:-{Settings().topic_prefix}}}"
    assert env["APP_ID"] == f"${{JOURNEY_APP_ID:-{Settings().app_id}}}"


def test_compose_runs_two_workers_sharing_the_partitions() -> None:
    doc = compose()
    workers = worker_services(doc)
    assert len(workers) == 2
    init_partitions = doc["services"]["topics-init"]["environment"]["PARTITIONS"]
    instance_ids = set()
    for name, svc in workers.items():
        assert svc["build"]["context"] == ".."
        env = svc["environment"]
        assert env["JOURNEY_BROKER"] == "kafka:9092"
        assert env["JOURNEY_PARTITIONS"] == init_partitions  # one variable feeds both
        assert env["JOURNEY_WEB_HOST"] == "0.0.0.0"
        assert env["JOURNEY_STORE"] == "rocksdb://"
        assert set(env) <= settings_env_names(), name
        instance_ids.add(env["JOURNEY_INSTANCE_ID"])
        assert svc["depends_on"]["topics-init"]["condition"] == "service_completed_successfully"
        assert svc["depends_on"]["kafka"]["condition"] == "service_healthy"
        assert "/health" in " ".join(svc["healthcheck"]["test"])
        assert any(v.endswith(":/var/lib/journey") for v in svc["volumes"])
    assert len(instance_ids) == 2
    assert (REPO / ".dockerignore").exists()


def test_compose_prometheus_and_grafana_are_provisioned() -> None:
    services = compose()["services"]
    prom, graf = services["prometheus"], services["grafana"]
    assert prom["image"].startswith("prom/prometheus:")
    assert graf["image"].startswith("grafana/grafana:")
    assert graf["depends_on"]["prometheus"]["condition"] == "service_healthy"
    for svc in (prom, graf):
        assert "healthcheck" in svc
        for volume in svc["volumes"]:
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (DEPLOY / source).exists(), volume
    assert "./prometheus:/etc/prometheus:ro" in prom["volumes"]
    assert "./grafana/journey.json:/etc/grafana/dashboards/journey.json:ro" in graf["volumes"]
    provisioning = DEPLOY / "grafana" / "provisioning"
    datasource = yaml.safe_load((provisioning / "datasources" / "prometheus.yaml").read_text())
    ds = datasource["datasources"][0]
    assert ds["type"] == "prometheus" and ds["url"] == "http://prometheus:9090"
    assert ds["isDefault"] is True
    provider = yaml.safe_load((provisioning / "dashboards" / "journey.yaml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/etc/grafana/dashboards"


def compose_cli() -> list[str] | None:
    """`docker compose` (v2 plugin) or the standalone `docker-compose`, whichever runs."""
    candidates = [["docker", "compose"], ["docker-compose"]]
    for cmd in candidates:
        if shutil.which(cmd[0]) and subprocess.run(
                [*cmd, "version"], check=False, capture_output=True, timeout=60).returncode == 0:
            return cmd
    return None


def test_compose_config_resolves_with_the_compose_cli() -> None:
    cmd = compose_cli()
    if cmd is None:
        pytest.skip("neither the docker compose plugin nor docker-compose is installed")
    env = {**os.environ, "JOURNEY_PARTITIONS": "16"}
    proc = subprocess.run([*cmd, "-f", str(COMPOSE), "config"], check=False, capture_output=True,
                          text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    resolved = yaml.safe_load(proc.stdout)
    assert set(resolved["services"]) == {"kafka", "topics-init", "worker-1", "worker-2",
                                         "prometheus", "grafana"}
    assert str(resolved["services"]["topics-init"]["environment"]["PARTITIONS"]) == "16"
    for worker in ("worker-1", "worker-2"):
        assert str(resolved["services"][worker]["environment"]["JOURNEY_PARTITIONS"]) == "16"
        assert Path(resolved["services"][worker]["build"]["context"]) == REPO


# --------------------------------------------------------------------------------------------
# Dockerfile


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_shape() -> None:
    instructions = dockerfile_instructions()
    args = dict(rest.split("=", 1) for word, rest in instructions if word == "ARG" and "=" in rest)
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", args["PYTHON_IMAGE"])
    users = [rest for word, rest in instructions if word == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    assert any(word == "RUN" and "pip install '.[worker]'" in rest for word, rest in instructions)
    entry = [rest for word, rest in instructions if word == "ENTRYPOINT"]
    assert entry and json.loads(entry[-1]) == ["journey", "worker"]
    assert 'journey = "agents.cli:main"' in (REPO / "pyproject.toml").read_text()
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".git", ".venv", "tests"} <= set(ignored)


class _HealthHandler(http.server.BaseHTTPRequestHandler):
    status = 200
    path_served = "/health"
    seen_auth: ClassVar[list[str | None]] = []

    def do_GET(self) -> None:
        type(self).seen_auth.append(self.headers.get("Authorization"))
        code = type(self).status if self.path == type(self).path_served else 404
        self.send_response(code)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def healthcheck_exit(command: list[str], port: int, status: int,
                     token: str | None = None, path: str = "/health") -> int:
    _HealthHandler.status = status
    _HealthHandler.path_served = path
    env = {**os.environ, "JOURNEY_WEB_PORT": str(port)}
    env.pop("JOURNEY_WEB_TOKEN", None)
    if token:
        env["JOURNEY_WEB_TOKEN"] = token
    # The image has python on PATH; here the test's own interpreter stands in for it.
    argv = [sys.executable, *command[1:]]
    return subprocess.run(argv, check=False, env=env, capture_output=True, timeout=30).returncode


@pytest.fixture
def health_server() -> Iterator[int]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _HealthHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        thread.join(5)


def test_dockerfile_healthcheck_follows_health_status(health_server: int) -> None:
    line = next(rest for word, rest in dockerfile_instructions() if word == "HEALTHCHECK")
    command = json.loads(line[line.index("CMD") + 3:].strip())
    assert command[0] == "python" and "urllib" in command[2]
    # liveness: a worker restoring its table is sound, so the container is not unhealthy
    live = "/health/live"
    assert healthcheck_exit(command, health_server, 200, path=live) == 0
    assert healthcheck_exit(command, health_server, 503, path=live) != 0
    assert healthcheck_exit(command, health_server, 200, path="/health") != 0
    # the health pages are open, so the probe needs no token even when one is set
    _HealthHandler.seen_auth.clear()
    assert healthcheck_exit(command, health_server, 200, token="s3cret", path=live) == 0
    assert _HealthHandler.seen_auth == [None]


def test_compose_worker_healthcheck_follows_health_status(health_server: int) -> None:
    worker = next(iter(worker_services(compose()).values()))
    command = worker["healthcheck"]["test"][1:]  # drop "CMD"
    command = [c.replace(":6066/", f":{health_server}/") for c in command]
    # as the image's: liveness, so a worker restoring its table is not marked unhealthy
    live = "/health/live"
    assert healthcheck_exit(command, health_server, 200, path=live) == 0
    assert healthcheck_exit(command, health_server, 503, path=live) != 0
    assert healthcheck_exit(command, health_server, 200, path="/health") != 0


# --------------------------------------------------------------------------------------------
# Kubernetes manifests


def kustomize(directory: Path) -> list[dict[str, Any]]:
    """The objects ``kubectl kustomize DIR`` would render: the kustomization's resources
    and components, recursively (enough for the plain lists these manifests use)."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    docs: list[dict[str, Any]] = []
    for entry in [*kustomization.get("resources", []), *kustomization.get("components", [])]:
        target = directory / entry
        if target.is_dir():
            docs += kustomize(target)
        else:
            docs += [d for d in yaml.safe_load_all(target.read_text()) if d is not None]
    return docs


def k8s_docs() -> list[dict[str, Any]]:
    """What ``kubectl apply -k deploy/k8s`` applies, plus the optional ServiceMonitor."""
    return kustomize(K8S) + kustomize(K8S / "components" / "prometheus-operator")


def k8s(kind: str, name: str | None = None) -> dict[str, Any]:
    matches = [d for d in k8s_docs() if d["kind"] == kind
               and (name is None or d["metadata"]["name"] == name)]
    assert len(matches) == 1, (kind, name, len(matches))
    return matches[0]


def example_secret() -> dict[str, Any]:
    return yaml.safe_load((K8S / "secret.example.yaml").read_text())


def test_k8s_manifests_are_well_formed() -> None:
    applied = kustomize(K8S)
    kinds = {d["kind"] for d in applied}
    assert {"StatefulSet", "Service", "PodDisruptionBudget", "ConfigMap"} <= kinds
    for doc in k8s_docs():
        assert doc["apiVersion"] and doc["kind"] and doc["metadata"]["name"], doc
    # Applying the base never overwrites real credentials with a placeholder, and never
    # fails on a cluster without the Prometheus Operator.
    assert "Secret" not in kinds and "ServiceMonitor" not in kinds
    assert not [d for d in applied if "REPLACE-ME" in yaml.safe_dump(d)]
    component = yaml.safe_load((K8S / "components" / "prometheus-operator" /
                                "kustomization.yaml").read_text())
    assert component["kind"] == "Component"
    assert {d["kind"] for d in kustomize(K8S / "components" / "prometheus-operator")} == {
        "ServiceMonitor"}
    # Every manifest file is either applied, the example Secret, or in the component.
    listed = set(yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"])
    assert listed == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml",
                                                            "secret.example.yaml"}
    # The image is set through kustomize's images field, which names the manifests' image.
    images = yaml.safe_load((K8S / "kustomization.yaml").read_text())["images"]
    container = k8s("StatefulSet")["spec"]["template"]["spec"]["containers"][0]
    assert container["image"].split(":")[0] in {i["name"] for i in images}
    readme = (K8S / "README.md").read_text()
    assert "docker push" in readme and "kubectl create secret" in readme


def test_k8s_statefulset_keeps_state_and_identity() -> None:
    sts = k8s("StatefulSet")
    pod = sts["spec"]["template"]
    container = pod["spec"]["containers"][0]
    claims = {c["metadata"]["name"] for c in sts["spec"]["volumeClaimTemplates"]}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts[claims.pop()] == "/var/lib/journey"
    env = {e["name"]: e for e in container["env"]}
    assert env["JOURNEY_INSTANCE_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert set(env) - {"POD_IP"} <= settings_env_names()
    assert env["JOURNEY_WEB_ADVERTISED_URL"]["value"] == "http://$(POD_IP):6066"
    config = k8s("ConfigMap")
    assert config["data"]["JOURNEY_STORE"] == "rocksdb://"
    assert {"configMapRef": {"name": config["metadata"]["name"]}} in container["envFrom"]
    assert sts["spec"]["serviceName"] == k8s("Service", "journey-headless")["metadata"]["name"]
    assert k8s("Service", "journey-headless")["spec"]["clusterIP"] == "None"
    # Probes and scrape annotations point at the worker's HTTP port.
    port = {p["name"]: p["containerPort"] for p in container["ports"]}["http"]
    assert port == int(config["data"]["JOURNEY_WEB_PORT"])
    assert container["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}
    notes = pod["metadata"]["annotations"]
    assert notes["prometheus.io/scrape"] == "true"
    assert notes["prometheus.io/port"] == str(port)
    assert notes["prometheus.io/path"] == "/metrics"


def test_k8s_selectors_match_the_worker_pods() -> None:
    pod_labels = k8s("StatefulSet")["spec"]["template"]["metadata"]["labels"]
    for doc in (k8s("Service", "journey"), k8s("Service", "journey-headless")):
        assert doc["spec"]["selector"].items() <= pod_labels.items()
    assert k8s("PodDisruptionBudget")["spec"]["selector"]["matchLabels"].items() \
        <= pod_labels.items()
    monitor = k8s("ServiceMonitor")
    metrics_service = k8s("Service", "journey")
    assert monitor["spec"]["selector"]["matchLabels"].items() \
        <= metrics_service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] in {
        p["name"] for p in metrics_service["spec"]["ports"]}
    # job="journey", which the alert rules select on.
    assert metrics_service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == "journey"


def test_k8s_credentials_come_from_the_secret_only() -> None:
    secret = example_secret()
    config = k8s("ConfigMap")
    container = k8s("StatefulSet")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    for var, key in (("JOURNEY_SASL_USERNAME", "username"), ("JOURNEY_SASL_PASSWORD", "password")):
        ref = env[var]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": secret["metadata"]["name"], "key": key}
        assert key in secret["stringData"]
        assert "value" not in env[var]
    secret_fields = {"JOURNEY_" + f.name.upper() for f in fields(Settings)
                     if f.metadata.get("secret")}
    secret_fields.add("JOURNEY_SASL_USERNAME")
    assert not secret_fields & set(config["data"])
    assert not [k for k in config["data"] if re.search("PASSWORD|SECRET|TOKEN", k)]
    assert secret["stringData"]["password"] not in config["data"].values()
    assert set(config["data"]) <= settings_env_names()


def test_k8s_readme_explains_partitions_and_scaling() -> None:
    text = (K8S / "README.md").read_text().lower()
    for phrase in ("exactly one worker", "idle", "standby", "scaling out"):
        assert phrase in text
    assert "kubectl scale statefulset journey" in text
