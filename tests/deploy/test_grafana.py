"""deploy/grafana/dlsms-dashboard.json against what the app really exports: every panel's
query names only metrics (and labels) that a running app serves at /metrics, so renaming
a metric in the code fails here until the dashboard follows."""

import json
import re
from typing import Any

import httpx
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import REPO_ROOT

DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "dlsms-dashboard.json"
DATASOURCE = "${DS_PROMETHEUS}"
# Labels Prometheus adds to every scraped series (the target's), not the app.
TARGET_LABELS = {"instance", "job", "pod", "namespace"}
# The series of each family, by its type, as the text format names them.
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
    "unknown": ("",),
}
# What the dashboard must show (issue 16): requests, latency, pool, streams, sweeps,
# outbox and cache.
SHOWN = {
    "dlsms_http_requests_total",
    "dlsms_http_request_duration_seconds_bucket",
    "dlsms_db_pool_size",
    "dlsms_db_pool_in_use",
    "dlsms_db_pool_max",
    "dlsms_sse_subscribers",
    "dlsms_sweep_runs_total",
    "dlsms_sweep_rows_total",
    "dlsms_outbox_queued_total",
    "dlsms_outbox_deliveries_total",
    "dlsms_outbox_messages",
    "dlsms_seat_cache_lookups_total",
}


def dashboard() -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return parsed


def panels() -> list[dict[str, Any]]:
    found = []
    for panel in dashboard()["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))  # a collapsed row holds its panels
    return [panel for panel in found if panel["type"] != "row"]


def expressions() -> list[str]:
    return [target["expr"] for panel in panels() for target in panel["targets"]]


def metric_names(expr: str) -> set[str]:
    """The series an expression selects: names before a {selector} or [range], and any
    bare name of the app's or the process collector's families."""
    code = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values are not names
    before_selector = re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?=[{\[])", code)
    bare = re.findall(r"\b((?:dlsms|process|python)_[a-zA-Z0-9_:]+)", code)
    return set(before_selector) | set(bare)


def label_names(expr: str) -> set[str]:
    code = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    matchers = {
        name
        for selector in re.findall(r"\{([^}]*)\}", code)
        for name in re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", selector)
    }
    grouped = {
        name.strip()
        for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", code)
        for name in group.split(",")
        if name.strip()
    }
    return matchers | grouped


async def exported(client: httpx.AsyncClient) -> dict[str, set[str]]:
    """Every series name the app serves at /metrics, with its label names (from the
    registry: a labelled family with no child yet shows no sample to read them from)."""
    for path in ("/health", "/ready", "/branches", "/no-such-page"):
        await client.get(path)
    response = await client.get("/metrics")
    assert response.status_code == 200
    series: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(response.text):
        for suffix in SUFFIXES[family.type]:
            series[family.name + suffix] = {
                label for sample in family.samples for label in sample.labels
            }
    # The registry knows every family's label names; private, but stable for years.
    for name, collector in REGISTRY._names_to_collectors.items():
        if name in series and isinstance(collector, MetricWrapperBase):
            series[name] |= set(collector._labelnames)
    return series


async def test_every_query_names_only_metrics_and_labels_the_app_exports(
    client: httpx.AsyncClient,
) -> None:
    series = await exported(client)
    shown: set[str] = set()

    for expr in expressions():
        names = metric_names(expr)
        assert names, f"no metric in {expr!r}"
        unknown = names - set(series)
        assert not unknown, f"{expr!r} names {unknown}, which /metrics does not serve"
        allowed = TARGET_LABELS.union(*(series[name] for name in names))
        if any(name.endswith("_bucket") for name in names):
            allowed.add("le")
        assert label_names(expr) <= allowed, f"{expr!r}: labels outside {allowed}"
        shown |= names

    assert shown >= SHOWN, f"not on the dashboard: {SHOWN - shown}"
    # The pod picker lists the values of a real label of a real series.
    (picker,) = [v for v in dashboard()["templating"]["list"] if v["type"] == "query"]
    query = re.fullmatch(r"label_values\((\w+), (\w+)\)", picker["definition"])
    assert query is not None
    metric, label = query.groups()
    assert metric in series and label in TARGET_LABELS | series[metric]


def test_the_metric_extraction_sees_what_a_query_names() -> None:
    expr = (
        'sum by (le, route) (rate(dlsms_http_request_duration_seconds_bucket{instance=~"$i",'
        ' route!~".*/stream"}[5m])) / sum(dlsms_db_pool_max)'
    )

    assert metric_names(expr) == {"dlsms_http_request_duration_seconds_bucket", "dlsms_db_pool_max"}
    assert label_names(expr) == {"le", "route", "instance"}


def test_the_data_source_is_a_template_variable_everywhere() -> None:
    parsed = dashboard()
    variables = {v["name"]: v for v in parsed["templating"]["list"]}

    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    assert [i["name"] for i in parsed["__inputs"]] == ["DS_PROMETHEUS"]
    assert panels()
    for panel in panels():
        assert panel["datasource"] == {"type": "prometheus", "uid": DATASOURCE}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == DATASOURCE, panel["title"]


def test_panels_have_unique_ids_and_fit_the_grid() -> None:
    every = [*panels(), *(p for p in dashboard()["panels"] if p["type"] == "row")]
    ids = [panel["id"] for panel in every]

    assert len(ids) == len(set(ids))
    for panel in every:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
