"""The container files, checked without a Docker engine (none runs here): the compose
file parses and wires the topology; the Dockerfile is multi-stage, non-root, with a
health check; the nginx config passes `nginx -t`."""

import ipaddress
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.settings import Settings
from tests.conftest import REPO_ROOT


def compose() -> dict[str, Any]:
    parsed: dict[str, Any] = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    return parsed


def test_compose_runs_postgres_15_and_redis_7_with_health_checks_and_volumes() -> None:
    services = compose()["services"]

    assert services["postgres"]["image"] == "postgres:15"
    assert services["redis"]["image"] == "redis:7"
    for name in ("postgres", "redis"):
        assert services[name]["healthcheck"]["test"]
        assert any(v.split(":")[0] in compose()["volumes"] for v in services[name]["volumes"])


def test_compose_runs_two_or_more_app_replicas_behind_nginx() -> None:
    services = compose()["services"]
    app, nginx = services["app"], services["nginx"]

    assert app["build"] == "."
    assert app["deploy"]["replicas"] >= 2
    assert app["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert app["depends_on"]["redis"]["condition"] == "service_healthy"
    assert app["environment"]["DATABASE_URL"].startswith("postgresql://")
    assert app["environment"]["REDIS_URL"].startswith("redis://redis:")
    assert app["env_file"] == ".env"
    assert "./deploy/nginx.conf:/etc/nginx/conf.d/default.conf:ro" in nginx["volumes"]
    assert "ports" not in app  # reached through nginx only


def test_compose_replicas_trust_exactly_their_nginx_to_name_the_client() -> None:
    parsed = compose()
    nginx_address = parsed["services"]["nginx"]["networks"]["default"]["ipv4_address"]
    (subnet,) = (c["subnet"] for c in parsed["networks"]["default"]["ipam"]["config"])
    trusted = Settings(
        FORWARDED_ALLOW_IPS=parsed["services"]["app"]["environment"]["FORWARDED_ALLOW_IPS"],
        DLSMS_ENV="development",  # whatever DATABASE_URL the environment has, no secret needed
    ).FORWARDED_ALLOW_IPS

    assert trusted == [nginx_address]
    assert ipaddress.ip_address(nginx_address) in ipaddress.ip_network(subnet)


def test_every_variable_compose_reads_is_in_env_example() -> None:
    text = (REPO_ROOT / "docker-compose.yml").read_text()
    wanted = set(re.findall(r"\$\{([A-Z_]+)", text))
    example = (REPO_ROOT / ".env.example").read_text()
    given = set(re.findall(r"^([A-Z_]+)=", example, re.MULTILINE))

    assert wanted <= given
    assert "JWT_SECRET" in given
    assert not (REPO_ROOT / ".env").exists() or ".env" in (REPO_ROOT / ".gitignore").read_text()


def test_dockerfile_is_multi_stage_non_root_with_a_health_check_and_dlsms_serve() -> None:
    text = (REPO_ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
    final = text.split("\nFROM ")[-1]

    assert len(stages) >= 2
    assert all(image.startswith("python:3.11-slim") for image in stages)
    assert re.search(r"^USER (?!root)\S+", final, re.MULTILINE)
    assert "HEALTHCHECK" in final and "/health" in final
    assert 'ENTRYPOINT ["dlsms"]' in final and '"serve"' in final
    # No compilers or package installs in the image that runs.
    assert "apt-get" not in final and "pip install" not in final


def nginx() -> str:
    """The nginx binary; skips without one, except in CI (DLSMS_REQUIRE_NGINX=1)."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    if found is None:
        if os.environ.get("DLSMS_REQUIRE_NGINX") == "1":
            pytest.fail("DLSMS_REQUIRE_NGINX=1 but nginx is not installed")
        pytest.skip("nginx is not installed (Debian: apt-get install nginx)")
    return found


def test_nginx_config_passes_nginx_t(tmp_path: Path) -> None:
    server_block = (REPO_ROOT / "deploy" / "nginx.conf").read_text()
    # Outside compose the `app` host does not resolve; everything else is checked as is.
    server_block = server_block.replace("server app:8000", "server 127.0.0.1:8000")
    server_block = server_block.replace("server app:9090", "server 127.0.0.1:9090")
    server_block = server_block.replace("listen 80;", "listen 127.0.0.1:18080;")
    server_block = server_block.replace("listen 9090 http2;", "listen 127.0.0.1:19090 http2;")
    server_block = server_block.replace("/var/log/nginx/access.log", f"{tmp_path}/access.log")
    (tmp_path / "logs").mkdir()
    main = tmp_path / "nginx.conf"
    main.write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\n"
        "events {}\n"
        f"http {{\n access_log off;\n client_body_temp_path {tmp_path};\n{server_block}\n}}\n"
    )

    result = subprocess.run(
        [nginx(), "-t", "-c", str(main), "-p", str(tmp_path)], capture_output=True, text=True
    )

    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr


def test_nginx_access_log_writes_paths_without_query_strings() -> None:
    # A stream token in ?access_token= (api.md, Conventions) must not reach the log.
    conf = (REPO_ROOT / "deploy" / "nginx.conf").read_text()
    log_format = re.search(r"log_format\s+dlsms\s+(.*?);", conf, re.DOTALL)
    assert log_format is not None
    variables = set(re.findall(r"\$(\w+)", log_format.group(1)))
    assert "uri" in variables
    assert not variables & {"request", "request_uri", "args", "query_string", "http_referer"}
    assert re.search(r"^\s*access_log\s+\S+\s+dlsms;", conf, re.MULTILINE)


def nginx_blocks(conf: str, kind: str) -> list[str]:
    """The bodies of the top-level ``kind`` blocks (``server``, ``upstream NAME``) of an
    nginx file (braces balanced; comments dropped)."""
    text = re.sub(r"#[^\n]*", "", conf)
    blocks = []
    for match in re.finditer(rf"^{kind}\b[^{{]*\{{", text, re.MULTILINE):
        depth, at = 1, match.end()
        while depth:
            depth += {"{": 1, "}": -1}.get(text[at], 0)
            at += 1
        blocks.append(text[match.start() : at])
    return blocks


def seconds(value: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = re.fullmatch(r"(\d+)(ms|s|m|h|d)?", value).groups()  # type: ignore[union-attr]
    return int(number) * units[unit or "s"]


def test_compose_replicas_serve_grpc_and_nginx_publishes_it() -> None:
    services = compose()["services"]
    app, nginx_service = services["app"], services["nginx"]
    port = Settings(GRPC_PORT=app["environment"]["GRPC_PORT"], DLSMS_ENV="development").GRPC_PORT

    assert port == 9090
    assert "9090" in [str(p) for p in app["expose"]]
    assert "9090:9090" in nginx_service["ports"]
    assert "ports" not in app  # gRPC too is reached through nginx only


def test_nginx_passes_grpc_over_http2_to_every_replicas_grpc_port() -> None:
    conf = (REPO_ROOT / "deploy" / "nginx.conf").read_text()
    grpc_port = compose()["services"]["app"]["environment"]["GRPC_PORT"]
    (upstream,) = nginx_blocks(conf, r"upstream\s+dlsms_grpc")
    servers = [s for s in nginx_blocks(conf, "server") if "grpc_pass" in s]

    assert re.search(rf"^\s*server\s+app:{grpc_port}\b", upstream, re.MULTILINE)
    assert re.search(r"^\s*keepalive\s+\d+;", upstream, re.MULTILINE)
    assert len(servers) == 1
    (server,) = servers
    # HTTP/2 from the clients (gRPC needs it), on the port compose publishes.
    assert re.search(r"^\s*listen\s+9090\s+http2;", server, re.MULTILINE)
    assert re.search(r"^\s*grpc_pass\s+grpc://dlsms_grpc;", server, re.MULTILINE)
    # The streams (WatchSeats, StreamNotifications) stay open for long quiet stretches.
    for directive in ("grpc_read_timeout", "grpc_send_timeout"):
        found = re.search(rf"^\s*{directive}\s+(\w+);", server, re.MULTILINE)
        assert found is not None, directive
        assert seconds(found.group(1)) >= 600, found.group(0)
    # The HTTP server does not speak gRPC, and the gRPC one proxies nothing else.
    assert "proxy_pass" not in server
    assert re.search(r"^\s*access_log\s+\S+\s+dlsms;", server, re.MULTILINE)
