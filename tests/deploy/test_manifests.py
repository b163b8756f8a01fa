"""Every deployment manifest parses, and agrees with the code it deploys."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client import models as k8s
from pydantic import BaseModel, ValidationError

from service.app import create_app
from service.grpc.port import DEFAULT_PORT as GRPC_PORT
from service.settings import Settings
from tests.builders import write_repository
from tests.deploy import dockerfile
from tests.deploy.dockerfile import ROOT

DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
TRAINING = KUBERNETES / "training"
MANIFESTS = sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")])
PORT: int = Settings.model_fields["port"].default
SETTINGS_VARS = {f"HEADSTART_{name.upper()}" for name in Settings.model_fields}
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
IMAGE = f"headstart:{VERSION}"


@pytest.fixture(scope="module")
def routes(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Every URL rule of the real app, serving a tiny repository."""
    repo = write_repository(tmp_path_factory.mktemp("routes-repo"))
    app = create_app(Settings(model_repository=repo))
    return {rule.rule for rule in app.url_map.iter_rules()}


def _load(path: Path) -> list[dict[str, Any]]:
    documents = [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
    assert documents, f"{path} is empty"
    assert all(isinstance(doc, dict) for doc in documents)
    return documents


def _one(path: Path) -> dict[str, Any]:
    documents = _load(path)
    assert len(documents) == 1, f"{path} holds {len(documents)} documents"
    return documents[0]


def _by_kind(kind: str, name: str | None = None) -> dict[str, Any]:
    """The one serving manifest of ``kind`` (the training ones are checked on their own),
    or of ``kind`` and ``name``."""
    found = [
        doc
        for path in KUBERNETES.rglob("*.yaml")
        if TRAINING not in path.parents
        for doc in _load(path)
        if doc["kind"] == kind and name in (None, doc["metadata"]["name"])
    ]
    assert len(found) == 1, f"{len(found)} {kind} manifests"
    return found[0]


def _env_names(container: dict[str, Any]) -> set[str]:
    return {item["name"] for item in container.get("env", [])}


def test_there_are_manifests_to_check() -> None:
    names = {path.relative_to(DEPLOY).as_posix() for path in MANIFESTS}
    assert {
        "compose.yaml",
        "prometheus.yml",
        "kubernetes/deployment.yaml",
        "kubernetes/service.yaml",
        "kubernetes/hpa.yaml",
        "kubernetes/pdb.yaml",
        "kubernetes/kustomization.yaml",
        "kubernetes/kserve/inferenceservice.yaml",
        "kubernetes/kserve/inferenceservice-grpc.yaml",
        "kubernetes/training/kustomization.yaml",
        "kubernetes/training/report-shards.yaml",
        "kubernetes/training/report-assemble.yaml",
        "kubernetes/training/train.yaml",
    } <= names


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.relative_to(DEPLOY).as_posix())
def test_manifest_parses(path: Path) -> None:
    _load(path)


# ---- docker compose


def _check_compose_schema(path: Path) -> subprocess.CompletedProcess[str]:
    tool = Path(sys.executable).with_name("check-jsonschema")
    assert tool.is_file(), f"check-jsonschema not installed next to {sys.executable} (dev extra)"
    return subprocess.run(
        [str(tool), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_compose_file_follows_the_compose_specification() -> None:
    result = _check_compose_schema(DEPLOY / "compose.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_schema_check_rejects_a_misspelt_key(tmp_path: Path) -> None:
    # Guard for the test above: the same check must fail on a typo.
    text = (DEPLOY / "compose.yaml").read_text()
    assert "stop_grace_period:" in text
    bad = tmp_path / "compose.yaml"
    bad.write_text(text.replace("stop_grace_period:", "stop_grace_periode:"))
    result = _check_compose_schema(bad)
    assert result.returncode != 0
    assert "stop_grace_periode" in result.stdout


def test_compose_runs_replicas_of_the_image_built_here() -> None:
    compose = _one(DEPLOY / "compose.yaml")
    service = compose["services"]["headstart"]
    assert (DEPLOY / service["build"]["context"]).resolve() == ROOT
    assert service["build"]["dockerfile"] == "Dockerfile"
    assert service["image"] == IMAGE
    assert service["deploy"]["replicas"] >= 2
    assert service["expose"] == [str(PORT), str(GRPC_PORT)]
    assert "ports" not in service, "replicas publish no host port; the load balancer does"
    assert set(service["environment"]) <= SETTINGS_VARS, set(service["environment"]) - SETTINGS_VARS
    env = service["environment"]
    cpus = float(service["deploy"]["resources"]["limits"]["cpus"])
    assert int(env["HEADSTART_WORKERS"]) * int(env["HEADSTART_ORT_THREADS"]) <= cpus


def test_compose_stop_grace_outlasts_the_drain() -> None:
    service = _one(DEPLOY / "compose.yaml")["services"]["headstart"]
    grace = re.fullmatch(r"(\d+)s", service["stop_grace_period"])
    assert grace is not None
    assert int(grace.group(1)) > int(service["environment"]["HEADSTART_GRACEFUL_TIMEOUT"])


def test_compose_images_are_pinned_and_configs_exist() -> None:
    services = _one(DEPLOY / "compose.yaml")["services"]
    assert set(services) == {"headstart", "loadbalancer", "prometheus"}
    for name, service in services.items():
        tag = service["image"].rpartition(":")[2]
        assert re.search(r"\d", tag), f"{name}: {service['image']} is not pinned to a version"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert (DEPLOY / source).is_file(), f"{name} mounts missing {source}"
    assert services["loadbalancer"]["depends_on"]["headstart"]["condition"] == "service_healthy"


def test_nginx_balances_over_the_service_port() -> None:
    conf = (DEPLOY / "nginx.conf").read_text()
    servers = re.findall(r"^\s*server\s+([\w.-]+):(\d+)\b", conf, flags=re.MULTILINE)
    assert servers == [("headstart", str(PORT)), ("headstart", str(GRPC_PORT))]
    assert re.search(rf"listen {GRPC_PORT};\s+http2 on;", conf), "gRPC needs an HTTP/2 listener"
    assert "grpc_pass grpc://headstart_grpc;" in conf
    sizes = re.findall(r"client_max_body_size\s+(\d+)m;", conf)
    assert len(sizes) == 2  # HTTP bodies and gRPC messages
    for size in sizes:
        assert int(size) * 1024 * 1024 >= Settings.model_fields["max_body_bytes"].default
    read = re.search(r"proxy_read_timeout\s+(\d+)s;", conf)
    assert read is not None
    assert int(read.group(1)) > Settings.model_fields["timeout"].default


def test_prometheus_scrapes_each_replica_on_a_real_route(routes: set[str]) -> None:
    jobs = _one(DEPLOY / "prometheus.yml")["scrape_configs"]
    (job,) = jobs
    assert job["metrics_path"] in routes
    (sd,) = job["dns_sd_configs"]
    assert sd["names"] == ["headstart"]
    assert sd["port"] == PORT


# ---- Kubernetes

# The Kubernetes API types, as the official client models them: unknown fields,
# wrong types and missing required fields are errors, as the API server would say.
_API_TYPES: dict[str, type[BaseModel]] = {
    "Deployment": k8s.V1Deployment,
    "Service": k8s.V1Service,
    "HorizontalPodAutoscaler": k8s.V2HorizontalPodAutoscaler,
    "PodDisruptionBudget": k8s.V1PodDisruptionBudget,
}


@pytest.mark.parametrize("kind", sorted(_API_TYPES))
def test_kubernetes_manifest_matches_the_api_schema(kind: str) -> None:
    _API_TYPES[kind].model_validate(_by_kind(kind))


def test_api_schema_check_rejects_a_misspelt_field() -> None:
    # Guard for the test above: a typo in a probe's name must not pass.
    deployment = _by_kind("Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(ValidationError, match="readinesProbe"):
        k8s.V1Deployment.model_validate(deployment)


def _container() -> dict[str, Any]:
    containers: list[dict[str, Any]] = _by_kind("Deployment")["spec"]["template"]["spec"][
        "containers"
    ]
    assert len(containers) == 1
    return containers[0]


def test_deployment_serves_the_settings_ports() -> None:
    http, grpc = _container()["ports"]
    assert (http["name"], http["containerPort"]) == ("http", PORT)
    assert (grpc["name"], grpc["containerPort"]) == ("grpc", GRPC_PORT)
    assert _container()["image"] == IMAGE


def test_deployment_probes_hit_real_health_routes(routes: set[str]) -> None:
    container = _container()
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    port_name = container["ports"][0]["name"]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] in routes, f"{probe} probes {get['path']}, which is no route"
        assert get["port"] in {port_name, PORT}


def test_deployment_environment_names_are_settings_fields() -> None:
    names = _env_names(_container())
    assert names <= SETTINGS_VARS, names - SETTINGS_VARS


def test_deployment_sizes_workers_from_its_cpu_limit() -> None:
    container = _container()
    resources = container["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"])
    assert {"cpu", "memory"} <= set(resources["limits"])
    (workers,) = [e for e in container["env"] if e["name"] == "HEADSTART_WORKERS"]
    field = workers["valueFrom"]["resourceFieldRef"]
    assert field["resource"] == "limits.cpu"
    assert field["containerName"] == container["name"]
    (ort,) = [e for e in container["env"] if e["name"] == "HEADSTART_ORT_THREADS"]
    assert ort["value"] == "1", "workers x ORT threads must stay within the CPU limit"


def test_deployment_drains_before_it_is_killed() -> None:
    pod = _by_kind("Deployment")["spec"]["template"]["spec"]
    container = _container()
    graceful = int(
        next(e["value"] for e in container["env"] if e["name"] == "HEADSTART_GRACEFUL_TIMEOUT")
    )
    pre_stop = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pod["terminationGracePeriodSeconds"] > graceful + pre_stop


def test_deployment_runs_as_the_image_user() -> None:
    pod = _by_kind("Deployment")["spec"]["template"]["spec"]
    uid, _, gid = dockerfile.stages()[-1].last("USER").partition(":")
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert str(pod["securityContext"]["runAsUser"]) == uid
    assert str(pod["securityContext"]["runAsGroup"]) == gid
    # A read-only root needs a writable /tmp for gunicorn and the metrics files.
    container = _container()
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]


def test_deployment_metrics_annotations_point_at_the_metrics_route(routes: set[str]) -> None:
    annotations = _by_kind("Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(PORT)
    assert annotations["prometheus.io/path"] in routes


def test_service_selects_the_deployment_pods() -> None:
    service = _by_kind("Service")
    deployment = _by_kind("Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    http, grpc = service["spec"]["ports"]
    assert http["targetPort"] in {_container()["ports"][0]["name"], PORT}
    assert grpc["targetPort"] in {_container()["ports"][1]["name"], GRPC_PORT}


def test_disruption_budget_covers_the_deployment_pods() -> None:
    pdb = _by_kind("PodDisruptionBudget")
    labels = _by_kind("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["minAvailable"] < _by_kind("HorizontalPodAutoscaler")["spec"]["minReplicas"]


def test_hpa_scales_the_deployment_on_cpu() -> None:
    hpa = _by_kind("HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    deployment = _by_kind("Deployment")
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert 1 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert "cpu" in _container()["resources"]["requests"], "CPU utilization needs a CPU request"


def test_kustomization_lists_every_plain_kubernetes_manifest() -> None:
    kustomization = _one(KUBERNETES / "kustomization.yaml")
    listed = set(kustomization["resources"])
    plain = {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == plain
    (image,) = kustomization["images"]
    assert f"{image['name']}:{image['newTag']}" == IMAGE


# ---- KServe


def _predictor(name: str = "headstart") -> dict[str, Any]:
    isvc = _by_kind("InferenceService", name)
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1"
    containers: list[dict[str, Any]] = isvc["spec"]["predictor"]["containers"]
    assert len(containers) == 1
    return containers[0]


def test_inference_service_is_a_v2_custom_predictor_on_the_image() -> None:
    container = _predictor()
    k8s.V1Container.model_validate(container)  # a custom predictor's container is a Pod's
    assert container["name"] == "kserve-container"
    assert container["image"] == IMAGE
    protocol = [e["value"] for e in container["env"] if e["name"] == "PROTOCOL"]
    assert protocol == ["v2"]
    (port,) = container["ports"]
    assert port["containerPort"] == PORT


def test_inference_service_probes_hit_real_v2_routes(routes: set[str]) -> None:
    container = _predictor()
    for probe in ("readinessProbe", "livenessProbe"):
        path = container[probe]["httpGet"]["path"]
        assert path.startswith("/v2/")
        assert path in routes, f"{probe} probes {path}, which is no route"
        assert container[probe]["httpGet"]["port"] == container["ports"][0]["containerPort"]


def test_inference_service_environment_and_metrics_agree_with_the_code(routes: set[str]) -> None:
    container = _predictor()
    names = _env_names(container) - {"PROTOCOL"}  # PROTOCOL is read by KServe, not the service
    assert names <= SETTINGS_VARS, names - SETTINGS_VARS
    (workers,) = [e for e in container["env"] if e["name"] == "HEADSTART_WORKERS"]
    assert workers["valueFrom"]["resourceFieldRef"]["containerName"] == container["name"]
    annotations = _by_kind("InferenceService", "headstart")["metadata"]["annotations"]
    assert annotations["prometheus.kserve.io/port"] == str(PORT)
    assert annotations["prometheus.kserve.io/path"] in routes


def test_grpc_inference_service_is_a_grpc_v2_predictor_with_grpc_probes() -> None:
    container = _predictor("headstart-grpc")
    k8s.V1Container.model_validate(container)
    assert container["image"] == IMAGE
    assert _value(container, "PROTOCOL") == "grpc-v2"
    assert _env_names(container) - {"PROTOCOL"} <= SETTINGS_VARS
    (port,) = container["ports"]
    assert (port["name"], port["containerPort"]) == ("h2c", GRPC_PORT)
    assert int(_value(container, "HEADSTART_GRPC_PORT")) == GRPC_PORT
    assert _value(container, "HEADSTART_HOST") == "0.0.0.0"
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == GRPC_PORT


def _value(container: dict[str, Any], name: str) -> Any:
    return next((e.get("value") for e in container.get("env", []) if e["name"] == name), None)


def test_every_serving_manifest_binds_all_interfaces_itself() -> None:
    # The service binds loopback unless told, so each place that must be reached from
    # outside its container says so itself rather than leaning on the image's default.
    assert Settings.model_fields["host"].default == "127.0.0.1"
    compose = _one(DEPLOY / "compose.yaml")["services"]["headstart"]
    assert compose["environment"]["HEADSTART_HOST"] == "0.0.0.0"
    assert _value(_container(), "HEADSTART_HOST") == "0.0.0.0"
    assert _value(_predictor(), "HEADSTART_HOST") == "0.0.0.0"
    runtime = next(stage for stage in dockerfile.stages() if stage.name == "runtime")
    assert runtime.env()["HEADSTART_HOST"] == "0.0.0.0"


# ---- Kubernetes training: the report's shards and torchrun across pods

_TRAINING_TYPES: dict[str, type[BaseModel]] = {
    "Job": k8s.V1Job,
    "Service": k8s.V1Service,
    "PersistentVolumeClaim": k8s.V1PersistentVolumeClaim,
}
TRAIN_IMAGE = f"headstart-train:{VERSION}"


def _training(name: str) -> dict[str, Any]:
    return _one(TRAINING / f"{name}.yaml")


def _pod(job: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    spec: dict[str, Any] = job["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    return spec, container


def _headstart_args(argv: list[str], **values: str) -> Any:
    """Parse a pod's ``headstart`` arguments with the real command line parser."""
    from scripts.cli import build_parser

    filled = [arg.replace("$(JOB_COMPLETION_INDEX)", values.get("index", "0")) for arg in argv]
    return build_parser().parse_args(filled)


@pytest.mark.parametrize(
    "path", sorted(TRAINING.glob("*.yaml")), ids=lambda p: p.relative_to(DEPLOY).as_posix()
)
def test_training_manifest_matches_the_api_schema(path: Path) -> None:
    if path.name == "kustomization.yaml":
        return
    for doc in _load(path):
        _TRAINING_TYPES[doc["kind"]].model_validate(doc)


def test_training_schema_check_rejects_a_misspelt_field() -> None:
    # Guard for the test above: Indexed Jobs hinge on this field's exact name.
    job = _training("report-shards")
    job["spec"]["completionMod"] = job["spec"].pop("completionMode")
    with pytest.raises(ValidationError, match="completionMod"):
        k8s.V1Job.model_validate(job)


def test_training_kustomization_lists_every_training_manifest() -> None:
    kustomization = _one(TRAINING / "kustomization.yaml")
    plain = {p.name for p in TRAINING.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == plain
    (image,) = kustomization["images"]
    assert f"{image['name']}:{image['newTag']}" == TRAIN_IMAGE
    assert "--target train" in (TRAINING / "kustomization.yaml").read_text()
    train = next(stage for stage in dockerfile.stages() if stage.name == "train")
    steps = " ".join(args for _, args in train.instructions)
    assert "python -m venv /opt/train" in steps  # where the pods' /opt/train/bin/... live


def _mounts_the_shared_claim(job: dict[str, Any]) -> str:
    spec, container = _pod(job)
    (volume,) = spec["volumes"]
    claim = _training("cache-volume")
    assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert "ReadWriteMany" in claim["spec"]["accessModes"]
    (mount,) = container["volumeMounts"]
    assert mount["name"] == volume["name"]
    assert container["image"] == TRAIN_IMAGE
    return str(mount["mountPath"])


def test_report_shards_are_an_indexed_job_over_every_slice() -> None:
    job = _training("report-shards")
    assert job["spec"]["completionMode"] == "Indexed"
    count = job["spec"]["completions"]
    assert job["spec"]["parallelism"] == count
    _, container = _pod(job)
    assert container["command"] == ["/opt/train/bin/headstart"]
    shards = [_headstart_args(container["args"], index=str(i)).shard for i in range(count)]
    assert shards == [f"{i}/{count}" for i in range(count)]
    args = _headstart_args(container["args"])
    assert args.command == "report"
    assert Path(_mounts_the_shared_claim(job)) in args.out.parents


def test_report_assembly_reads_the_shards_cache() -> None:
    shards = _headstart_args(_pod(_training("report-shards"))[1]["args"])
    job = _training("report-assemble")
    _, container = _pod(job)
    assemble = _headstart_args(container["args"])
    assert assemble.shard is None
    assert assemble.jobs == 1
    for option in ("budget", "dataset", "out", "seeds", "split_seed"):
        assert getattr(assemble, option) == getattr(shards, option), option
    assert Path(_mounts_the_shared_claim(job)) in assemble.out.parents


def test_torchrun_job_meets_at_pod_zero_and_builds() -> None:
    from torch.distributed.run import get_args_parser

    job = _training("train")
    service = _training("train-service")
    spec, container = _pod(job)
    assert container["command"] == ["/opt/train/bin/torchrun"]
    launcher = get_args_parser().parse_args(container["args"])
    assert job["spec"]["completionMode"] == "Indexed"
    assert launcher.nnodes == str(job["spec"]["completions"]) == str(job["spec"]["parallelism"])
    name = job["metadata"]["name"]
    assert spec["subdomain"] == service["metadata"]["name"]
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"] == {"job-name": name}
    host, port = launcher.rdzv_endpoint.split(":")
    assert host == f"{name}-0.{spec['subdomain']}"
    assert int(port) in {p["port"] for p in service["spec"]["ports"]}
    assert int(port) in {p["containerPort"] for p in container["ports"]}
    assert launcher.module
    assert launcher.training_script == "scripts.cli"
    build = _headstart_args(launcher.training_script_args)
    assert build.command == "build"
    assert build.nproc == 1  # torchrun starts the processes; build must not start more
    assert Path(_mounts_the_shared_claim(job)) in build.model_repository.parents
