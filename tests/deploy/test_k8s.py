"""deploy/k8s, checked without a cluster: both overlays render with `kubectl kustomize`,
every rendered object matches the Kubernetes JSON schemas (kubernetes-validate, offline),
the manifests say what docs/kubernetes.md promises (probes, non-root read-only pods,
graceful termination, SSE-friendly ingress, HPA, network policy), and checkov finds
nothing that is not waived in the file with a reason.

kubectl and checkov are outside the Python environment: without them these tests skip,
except under DLSMS_REQUIRE_KUBECTL=1 / DLSMS_REQUIRE_CHECKOV=1 (CI), where they fail.
The manifests are written for every kustomize from Debian's kubectl 1.20 (v2.0.3) on."""

import copy
import functools
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from app.settings import Settings
from tests.conftest import REPO_ROOT

K8S = REPO_ROOT / "deploy" / "k8s"
OVERLAYS = ("small", "campus")
# The Kubernetes versions the rendered objects must be valid for: the oldest still
# supported by the big managed offerings, and the newest kubernetes-validate ships.
SCHEMA_VERSIONS = ("1.30.0", "1.37.0")
TEST_SECRETS = {"JWT_SECRET": "k8s-test-" + "x" * 40, "DATABASE_URL": "postgresql://db/dlsms"}

Doc = dict[str, Any]


def require(tool: str, *, found: str | None, variable: str) -> str:
    if found is not None:
        return found
    if os.environ.get(variable) == "1":
        pytest.fail(f"{variable}=1 but {tool} is not installed")
    pytest.skip(f"{tool} is not installed ({variable}=1 makes this a failure)")


def kubectl() -> str:
    return require("kubectl", found=shutil.which("kubectl"), variable="DLSMS_REQUIRE_KUBECTL")


def checkov() -> str:
    """DLSMS_CHECKOV (the path .ci/run installs it at, in a venv of its own), else PATH."""
    found = os.environ.get("DLSMS_CHECKOV") or shutil.which("checkov")
    if found is not None and not Path(found).is_file():
        found = None
    return require("checkov", found=found, variable="DLSMS_REQUIRE_CHECKOV")


def kustomize(directory: Path) -> list[Doc]:
    result = subprocess.run(
        [kubectl(), "kustomize", str(directory)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@functools.cache
def _rendered(overlay: str) -> tuple[Doc, ...]:
    return tuple(kustomize(K8S / "overlays" / overlay))


def rendered(overlay: str) -> list[Doc]:
    """The overlay's objects (a fresh copy: tests may change theirs)."""
    return copy.deepcopy(list(_rendered(overlay)))


def find(docs: list[Doc], kind: str, name: str | None = None) -> list[Doc]:
    return [
        doc
        for doc in docs
        if doc["kind"] == kind and (name is None or doc["metadata"]["name"] == name)
    ]


def one(docs: list[Doc], kind: str, name: str | None = None) -> Doc:
    (found,) = find(docs, kind, name)
    return found


def pod_spec(workload: Doc) -> Doc:
    spec: Doc = workload["spec"]["template"]["spec"]
    return spec


def container(workload: Doc) -> Doc:
    (only,) = pod_spec(workload)["containers"]
    return dict(only)


def config_of(docs: list[Doc], workload: Doc) -> dict[str, str]:
    """The data of the ConfigMap the workload takes its environment from."""
    refs = [
        ref["configMapRef"]["name"]
        for ref in container(workload)["envFrom"]
        if "configMapRef" in ref
    ]
    (name,) = refs
    data: dict[str, str] = one(docs, "ConfigMap", name)["data"]
    return data


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def pod_labels(workload: Doc) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
    return labels


# --- rendering and schemas ------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_the_whole_stack_in_the_dlsms_namespace(overlay: str) -> None:
    docs = rendered(overlay)
    kinds = {doc["kind"] for doc in docs}

    expected = {
        "Namespace",
        "ServiceAccount",
        "ConfigMap",
        "Job",
        "Deployment",
        "Service",
        "Ingress",
        "PodDisruptionBudget",
        "NetworkPolicy",
    }
    assert expected <= kinds
    assert ("HorizontalPodAutoscaler" in kinds) == (overlay == "campus")
    for doc in docs:
        assert doc["metadata"]["labels"]["app.kubernetes.io/name"] == "dlsms", doc["kind"]
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "dlsms", doc["kind"]
    assert one(docs, "Namespace")["metadata"]["name"] == "dlsms"
    # The pods meet the namespace's Pod Security Standard, which enforces "restricted".
    ns_labels = one(docs, "Namespace")["metadata"]["labels"]
    assert ns_labels["pod-security.kubernetes.io/enforce"] == "restricted"


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_rendered_object_matches_the_kubernetes_schema(overlay: str, version: str) -> None:
    for doc in rendered(overlay):
        # strict: a misspelt or misplaced field is an error, not ignored
        kubernetes_validate.validate(doc, version, strict=True)


def test_the_schema_check_catches_a_misspelt_field() -> None:
    deployment = one(rendered("small"), "Deployment")
    pod_spec(deployment)["containers"][0]["securityContext"]["readOnlyRootFileSystem"] = True

    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, SCHEMA_VERSIONS[0], strict=True)


# --- the Deployment and the Job ---------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_ask_health_for_liveness_and_startup_and_ready_for_readiness(
    overlay: str,
) -> None:
    server = container(one(rendered(overlay), "Deployment"))
    ports = {port["name"]: port["containerPort"] for port in server["ports"]}

    assert ports == {"http": 8000, "grpc": 9090}
    for probe, path in (
        ("startupProbe", "/health"),
        ("livenessProbe", "/health"),
        ("readinessProbe", "/ready"),
    ):
        assert server[probe]["httpGet"] == {"path": path, "port": "http"}, probe
    # A start may wait on another pod's migration lock: much longer than a liveness failure.
    startup = server["startupProbe"]
    liveness = server["livenessProbe"]
    assert (
        startup["periodSeconds"] * startup["failureThreshold"]
        > liveness["periodSeconds"] * liveness["failureThreshold"]
    )


@pytest.mark.parametrize("kind", ["Deployment", "Job"])
def test_pods_run_as_the_images_non_root_user_read_only_without_capabilities(kind: str) -> None:
    workload = one(rendered("small"), kind)
    spec = pod_spec(workload)
    main = container(workload)
    dockerfile_uid = re.search(r"useradd .*--uid (\d+)", (REPO_ROOT / "Dockerfile").read_text())
    assert dockerfile_uid is not None

    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == int(dockerfile_uid.group(1))
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False
    assert (
        spec["serviceAccountName"] == one(rendered("small"), "ServiceAccount")["metadata"]["name"]
    )
    context = main["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    assert "add" not in context["capabilities"]
    assert context.get("privileged", False) is False
    # The only writable place: a small /tmp in memory; Python writes no bytecode.
    (mount,) = main["volumeMounts"]
    assert mount["mountPath"] == "/tmp"  # noqa: S108 (the pod's, in memory)
    (volume,) = spec["volumes"]
    assert volume["name"] == mount["name"] and "emptyDir" in volume
    assert {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"} in main["env"]
    for bound in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(main["resources"][bound]), bound


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_termination_grace_outlasts_the_prestop_sleep_plus_shutdown_grace(overlay: str) -> None:
    docs = rendered(overlay)
    deployment = one(docs, "Deployment")
    command = container(deployment)["lifecycle"]["preStop"]["exec"]["command"]
    shutdown_grace = float(config_of(docs, deployment)["SHUTDOWN_GRACE_SECONDS"])

    assert command[0] == "sleep"
    pre_stop = float(command[1])
    assert pre_stop > 0
    assert pod_spec(deployment)["terminationGracePeriodSeconds"] > pre_stop + shutdown_grace


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_config_map_is_accepted_by_the_app_as_production_settings(overlay: str) -> None:
    docs = rendered(overlay)
    deployment = one(docs, "Deployment")
    data = config_of(docs, deployment)

    assert set(data) <= set(Settings.model_fields)  # a misspelt name would be ignored
    settings = Settings(**{**data, **TEST_SECRETS})  # type: ignore[arg-type]
    assert settings.DLSMS_ENV == "production"
    assert settings.LOG_FORMAT == "json"
    ports = {p["name"]: p["containerPort"] for p in container(deployment)["ports"]}
    assert ports["grpc"] == settings.GRPC_PORT
    assert settings.FORWARDED_ALLOW_IPS != ["*"]
    # The Job reads the same settings.
    assert config_of(docs, one(docs, "Job")) == data


def test_secrets_are_referenced_by_name_and_never_rendered() -> None:
    docs = rendered("small")
    example = yaml.safe_load((K8S / "base" / "secret.example.yaml").read_text())

    assert find(docs, "Secret") == []
    for kind in ("Deployment", "Job"):
        refs = [r["secretRef"] for r in container(one(docs, kind))["envFrom"] if "secretRef" in r]
        assert refs == [{"name": example["metadata"]["name"]}], kind
    # Every key of the example is a setting the app reads (a typo would be ignored silently).
    assert set(example["stringData"]) <= set(Settings.model_fields)
    assert "JWT_SECRET" in example["stringData"]  # production refuses to start without it


def test_migration_job_runs_dlsms_migrate_with_the_servers_image() -> None:
    docs = rendered("small")
    job, deployment = one(docs, "Job"), one(docs, "Deployment")

    assert container(job)["args"] == ["migrate"]
    assert container(deployment)["args"][:3] == ["serve", "--host", "0.0.0.0"]  # noqa: S104
    assert container(job)["image"] == container(deployment)["image"]
    assert container(job)["image"].split(":")[0] == "dlsms"
    assert pod_spec(job)["restartPolicy"] == "Never"
    assert "command" not in container(job)  # the image's entrypoint, `dlsms`


def test_the_image_is_overridden_with_kustomize_images(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                # relative: kustomize refuses an absolute base
                "bases": [os.path.relpath(K8S / "overlays" / "small", tmp_path)],
                "images": [
                    {"name": "dlsms", "newName": "registry.example.edu/dlsms", "newTag": "9.9.9"}
                ],
            }
        )
    )
    docs = kustomize(tmp_path)

    for kind in ("Deployment", "Job"):
        assert container(one(docs, kind))["image"] == "registry.example.edu/dlsms:9.9.9", kind


def test_prometheus_scrapes_each_pod_on_its_http_port() -> None:
    deployment = one(rendered("small"), "Deployment")
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    ports = {p["name"]: p["containerPort"] for p in container(deployment)["ports"]}

    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    assert int(annotations["prometheus.io/port"]) == ports["http"]


# --- replicas -------------------------------------------------------------------------


def test_small_overlay_runs_two_replicas_without_an_autoscaler() -> None:
    docs = rendered("small")

    assert one(docs, "Deployment")["spec"]["replicas"] == 2
    assert find(docs, "HorizontalPodAutoscaler") == []


def test_campus_overlay_scales_2_to_10_pods_on_cpu() -> None:
    docs = rendered("campus")
    hpa = one(docs, "HorizontalPodAutoscaler")
    deployment = one(docs, "Deployment")

    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 10)
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "Resource" and metric["resource"]["name"] == "cpu"
    assert 0 < metric["resource"]["target"]["averageUtilization"] <= 100
    # The HPA owns the count: a replicas field would be reset by every `kubectl apply`.
    assert "replicas" not in deployment["spec"]
    # CPU utilization is measured against the request: there must be one.
    assert "cpu" in container(deployment)["resources"]["requests"]


# --- Service, Ingress, disruption budget, network policy ------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_service_pdb_and_policy_select_the_server_pods_never_the_migration_pod(
    overlay: str,
) -> None:
    docs = rendered(overlay)
    server = pod_labels(one(docs, "Deployment"))
    migration = pod_labels(one(docs, "Job"))
    selectors = {
        "Service": one(docs, "Service")["spec"]["selector"],
        "PodDisruptionBudget": one(docs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
        "NetworkPolicy": one(docs, "NetworkPolicy", "dlsms-server")["spec"]["podSelector"][
            "matchLabels"
        ],
        "Deployment": one(docs, "Deployment")["spec"]["selector"]["matchLabels"],
    }

    for kind, selector in selectors.items():
        assert matches(selector, server), kind
        assert not matches(selector, migration), kind
    policy = one(docs, "NetworkPolicy", "dlsms-migrate")["spec"]["podSelector"]["matchLabels"]
    assert matches(policy, migration) and not matches(policy, server)


def test_service_exposes_http_and_grpc_ports_of_the_container() -> None:
    docs = rendered("small")
    service = one(docs, "Service")
    names = {p["name"] for p in container(one(docs, "Deployment"))["ports"]}

    assert {p["name"]: p["targetPort"] for p in service["spec"]["ports"]} == {
        "http": "http",
        "grpc": "grpc",
    }
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= names


def test_disruption_budget_keeps_one_pod() -> None:
    assert one(rendered("campus"), "PodDisruptionBudget")["spec"]["minAvailable"] == 1


def ingress_paths(ingress: Doc) -> set[str]:
    return {path["path"] for rule in ingress["spec"]["rules"] for path in rule["http"]["paths"]}


def test_stream_ingress_does_not_buffer_and_reads_longer_than_a_stream_lives() -> None:
    docs = rendered("small")
    (streams,) = [i for i in find(docs, "Ingress") if "/seats/stream" in ingress_paths(i)]
    annotations = streams["metadata"]["annotations"]
    longest_stream = Settings.model_fields["SSE_MAX_STREAM_SECONDS"].default

    assert ingress_paths(streams) == {"/seats/stream", "/notifications/stream"}
    assert annotations["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) > longest_stream
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-send-timeout"]) > longest_stream
    # Same host as the API: the browser's EventSource is same-origin.
    (main,) = [
        i
        for i in find(docs, "Ingress")
        if "/" in ingress_paths(i)
        and i["metadata"]["annotations"].get("nginx.ingress.kubernetes.io/backend-protocol")
        != "GRPC"
    ]
    assert streams["spec"]["rules"][0]["host"] == main["spec"]["rules"][0]["host"]
    body = main["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"]
    assert body == f"{Settings.model_fields['MAX_BODY_BYTES'].default // 1024}k"


def test_grpc_has_its_own_ingress_speaking_grpc_to_the_grpc_port() -> None:
    (grpc,) = [
        i
        for i in find(rendered("small"), "Ingress")
        if i["metadata"]["annotations"].get("nginx.ingress.kubernetes.io/backend-protocol")
        == "GRPC"
    ]
    (rule,) = grpc["spec"]["rules"]
    (path,) = rule["http"]["paths"]

    assert path["backend"]["service"]["port"] == {"name": "grpc"}
    assert grpc["spec"]["tls"][0]["hosts"] == [rule["host"]]  # HTTP/2 to clients needs TLS


def test_metrics_are_denied_to_every_client_at_the_ingress() -> None:
    (denied,) = [i for i in find(rendered("small"), "Ingress") if "/metrics" in ingress_paths(i)]
    annotations = denied["metadata"]["annotations"]

    assert ingress_paths(denied) == {"/metrics"}
    assert denied["spec"]["rules"][0]["http"]["paths"][0]["pathType"] == "Exact"
    ranges = annotations["nginx.ingress.kubernetes.io/denylist-source-range"].split(",")
    assert set(ranges) == {"0.0.0.0/0", "::/0"}


def test_network_policy_lets_in_only_the_ingress_controller_and_prometheus() -> None:
    docs = rendered("small")
    server = one(docs, "NetworkPolicy", "dlsms-server")["spec"]
    migrate = one(docs, "NetworkPolicy", "dlsms-migrate")["spec"]

    assert server["policyTypes"] == ["Ingress", "Egress"]
    sources = set()
    for rule in server["ingress"]:
        assert rule["from"], "an empty `from` admits everyone"
        for peer in rule["from"]:
            assert set(peer) == {"namespaceSelector"}, peer  # no ipBlock, no open podSelector
            sources.add(peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"])
        assert {p["port"] for p in rule["ports"]} <= {"http", "grpc"}
    assert sources == {"ingress-nginx", "monitoring"}
    egress = {(p["port"], p["protocol"]) for rule in server["egress"] for p in rule["ports"]}
    assert {(53, "UDP"), (53, "TCP"), (5432, "TCP"), (6379, "TCP"), (443, "TCP")} <= egress
    # The migration pod: nothing in; out to DNS and PostgreSQL only.
    assert migrate["policyTypes"] == ["Ingress", "Egress"]
    assert migrate.get("ingress", []) == []
    egress = {(p["port"], p["protocol"]) for rule in migrate["egress"] for p in rule["ports"]}
    assert egress == {(53, "UDP"), (53, "TCP"), (5432, "TCP")}


# --- security scan --------------------------------------------------------------------


def waivers() -> set[str]:
    """The checkov check ids waived by annotation anywhere under deploy/k8s."""
    found = set()
    for path in K8S.rglob("*.yaml"):
        found |= set(re.findall(r"checkov\.io/skip\d+: (CKV\w+)=\S", path.read_text()))
    return found


def test_checkov_finds_nothing_that_is_not_waived_in_the_file(tmp_path: Path) -> None:
    binary = checkov()
    for overlay in OVERLAYS:
        (tmp_path / f"{overlay}.yaml").write_text(yaml.safe_dump_all(rendered(overlay)))
    # A copy of the Deployment with its hardening undone: the scan must see that.
    broken = one(rendered("small"), "Deployment")
    broken["metadata"]["name"] = "broken"
    del pod_spec(broken)["securityContext"]["runAsNonRoot"]
    pod_spec(broken)["containers"][0]["securityContext"] = {}
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump(broken))
    env = {
        **os.environ,
        # Offline: no mapping download, no Bridgecrew/Prisma platform, no package scan.
        "BC_SKIP_MAPPING": "TRUE",
        "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false",
        "ENABLE_DEFINITION_KEY": "False",
    }

    result = subprocess.run(
        [binary, "-d", str(tmp_path), "--framework", "kubernetes", "-o", "json", "--skip-download"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )

    report = json.loads(result.stdout)
    results = report["results"]
    assert results["parsing_errors"] == []
    failed = [(c["check_id"], c["resource"]) for c in results["failed_checks"]]
    real = [f for f in failed if ".broken" not in f[1]]
    assert real == [], real
    broken_ids = {check for check, resource in failed if ".broken" in resource}
    assert {"CKV_K8S_22", "CKV_K8S_20", "CKV_K8S_37"} <= broken_ids  # read-only, escalation, caps
    assert len(results["passed_checks"]) > 100
    skipped = results["skipped_checks"]
    for check in skipped:
        assert len(check["check_result"].get("suppress_comment", "")) > 20, check["check_id"]
    # Every waiver in the files is still needed (a fixed finding drops its waiver).
    assert {check["check_id"] for check in skipped} == waivers()


# --- the documentation's example -------------------------------------------------------


def kustomize_major() -> int:
    """The major version of kubectl's kustomize (kubectl 1.20 does not say: v2)."""
    result = subprocess.run(
        [kubectl(), "version", "--client"], capture_output=True, text=True, timeout=30
    )
    found = re.search(r"Kustomize Version: v(\d+)", result.stdout)
    return int(found.group(1)) if found else 2


def test_the_overlay_in_docs_kubernetes_md_renders_what_it_says(tmp_path: Path) -> None:
    if kustomize_major() < 4:
        pytest.skip("the documented overlay uses `resources`/`patches`, kustomize v4+")
    text = (REPO_ROOT / "docs" / "kubernetes.md").read_text()
    example = re.search(r"```yaml\n# my-campus/kustomization.yaml\n(.*?)```", text, re.DOTALL)
    assert example is not None
    # Placed where the example's relative path expects: beside the repository's deploy/.
    overlay = tmp_path / "my-campus"
    overlay.mkdir()
    (tmp_path / "deploy").symlink_to(REPO_ROOT / "deploy")
    (overlay / "kustomization.yaml").write_text(example.group(1))

    docs = kustomize(overlay)

    hosts = {i["metadata"]["name"]: i["spec"]["rules"][0]["host"] for i in find(docs, "Ingress")}
    assert hosts.pop("dlsms-grpc") == "grpc.seats.library.example.edu"
    assert set(hosts.values()) == {"seats.library.example.edu"}
    deployment = one(docs, "Deployment")
    assert container(deployment)["image"] == "registry.example.edu/dlsms:0.1.0"
    config = config_of(docs, deployment)
    assert config["PUBLIC_URL"] == "https://seats.library.example.edu"
    assert config["DB_POOL_MAX_SIZE"] == "15"  # the campus overlay's, kept by the merge
    assert one(docs, "HorizontalPodAutoscaler")["spec"]["maxReplicas"] == 10
    for doc in docs:
        kubernetes_validate.validate(doc, SCHEMA_VERSIONS[0], strict=True)
