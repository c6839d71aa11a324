"""N DL-SMS instances on loopback ports behind Debian's nginx, without containers.

The same topology as docker-compose.yml (replicas behind nginx with keep-alive and
unbuffered SSE, one PostgreSQL, one Redis), for hosts without containers, load tests
(loadtest/bench.py --instances N) and CI (tests/ops):

    .venv/bin/python deploy/cluster.py start 2 --port 8080   # prints the URL, returns
    .venv/bin/python deploy/cluster.py start 2 --grpc-port 9090   # and gRPC, as compose
    .venv/bin/python deploy/cluster.py status
    .venv/bin/python deploy/cluster.py stop                  # stops exactly what start made

The environment passes through to the instances (DATABASE_URL, REDIS_URL, JWT_SECRET,
...). Everything the cluster starts is recorded in its directory (CLUSTER_DIR,
default /tmp/dlsms-cluster): pid files, the rendered nginx.conf, logs.
"""

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYTHON = REPO / ".venv" / "bin" / "python"

NGINX_CONF = """
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/tmp;
    proxy_temp_path {dir}/tmp;
    fastcgi_temp_path {dir}/tmp;
    uwsgi_temp_path {dir}/tmp;
    scgi_temp_path {dir}/tmp;

    upstream dlsms {{
{servers}
        keepalive 64;
    }}
    map $http_x_request_id $dlsms_request_id {{
        default $http_x_request_id;
        ""      $request_id;
    }}
    server {{
        listen {address}:{port};
        proxy_bind {address};   # the instances see (and trust, FORWARDED_ALLOW_IPS) this
        client_max_body_size 64k;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        proxy_set_header X-Request-ID $dlsms_request_id;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_next_upstream error timeout http_502 http_503;
        location / {{ proxy_pass http://dlsms; }}
        location ~ ^/(notifications|seats)/stream$ {{
            proxy_pass http://dlsms;
            proxy_buffering off;
            proxy_cache off;
            proxy_read_timeout 1h;
            proxy_next_upstream off;
        }}
    }}
{grpc}}}
"""

# With a gRPC port: each instance's GRPC_PORT behind nginx's HTTP/2 listener, as in
# deploy/nginx.conf.
NGINX_GRPC = """
    upstream dlsms_grpc {{
{servers}
        keepalive 64;
    }}
    server {{
        listen {address}:{port} http2;
        grpc_bind {address};
        client_max_body_size 1m;
        grpc_set_header X-Request-ID $dlsms_request_id;
        grpc_set_header X-Real-IP $remote_addr;
        grpc_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        grpc_connect_timeout 5s;
        grpc_next_upstream error timeout;
        grpc_next_upstream_tries 2;
        location / {{
            grpc_pass grpc://dlsms_grpc;
            grpc_read_timeout 1h;
            grpc_send_timeout 1h;
        }}
    }}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def nginx_binary() -> str:
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if found is None:
        raise SystemExit("nginx is not installed (Debian: apt-get install -y nginx)")
    return found


def _upstream_servers(ports: list[int]) -> str:
    return "\n".join(f"        server 127.0.0.1:{p} max_fails=3 fail_timeout=5s;" for p in ports)


def render_nginx_conf(
    directory: Path,
    port: int,
    app_ports: list[int],
    address: str = "127.0.0.1",
    *,
    grpc_port: int | None = None,
    app_grpc_ports: list[int] | None = None,
) -> Path:
    """nginx.conf in ``directory``: HTTP on ``port`` to ``app_ports``; with
    ``grpc_port``, also gRPC (HTTP/2) on it to ``app_grpc_ports``."""
    grpc = ""
    if grpc_port is not None:
        grpc = NGINX_GRPC.format(
            servers=_upstream_servers(app_grpc_ports or []), port=grpc_port, address=address
        )
    conf = directory / "nginx.conf"
    (directory / "tmp").mkdir(parents=True, exist_ok=True)
    conf.write_text(
        NGINX_CONF.format(
            dir=directory,
            servers=_upstream_servers(app_ports),
            port=port,
            address=address,
            grpc=grpc,
        )
    )
    return conf


def _wait_ready(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url + "/ready", timeout=2) as response:  # noqa: S310
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} not ready after {timeout:.0f} s")
        time.sleep(0.2)


def _wait_listening(address: str, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((address, port), timeout=2):
                return
        except OSError as error:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing on {address}:{port} after {timeout:.0f} s") from error
            time.sleep(0.1)


@dataclass
class Cluster:
    directory: Path
    port: int
    app_ports: list[int] = field(default_factory=list)
    app_pids: list[int] = field(default_factory=list)
    address: str = "127.0.0.1"  # where nginx listens and connects to the instances from
    grpc_port: int | None = None  # nginx's gRPC listener; None: no gRPC
    app_grpc_ports: list[int] = field(default_factory=list)  # each instance's GRPC_PORT

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}"

    @property
    def grpc_target(self) -> str | None:
        """nginx's gRPC address for a channel (``host:port``), or None."""
        return None if self.grpc_port is None else f"{self.address}:{self.grpc_port}"

    def instance_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{p}" for p in self.app_ports]

    def instance_grpc_targets(self) -> list[str]:
        return [f"127.0.0.1:{p}" for p in self.app_grpc_ports]

    def save(self) -> None:
        state = {
            "port": self.port,
            "app_ports": self.app_ports,
            "app_pids": self.app_pids,
            "address": self.address,
            "grpc_port": self.grpc_port,
            "app_grpc_ports": self.app_grpc_ports,
        }
        (self.directory / "cluster.json").write_text(json.dumps(state))

    @classmethod
    def load(cls, directory: Path) -> "Cluster":
        state = json.loads((directory / "cluster.json").read_text())
        return cls(
            directory,
            state["port"],
            state["app_ports"],
            state["app_pids"],
            state.get("address", "127.0.0.1"),
            state.get("grpc_port"),
            state.get("app_grpc_ports", []),
        )


def start(
    instances: int,
    *,
    directory: Path,
    port: int | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 60,
    address: str = "127.0.0.1",
    grpc_port: int | None = None,
) -> Cluster:
    """Start ``instances`` app processes and nginx in front; wait until all are ready.
    nginx listens on ``address`` and connects to the instances from it. With
    ``grpc_port`` (0: a free one), every instance also serves gRPC on a port of its own
    (GRPC_PORT) and nginx passes its gRPC listener on ``grpc_port`` to them."""
    directory.mkdir(parents=True, exist_ok=True)
    if (directory / "cluster.json").exists():
        raise SystemExit(f"a cluster is already recorded in {directory}; stop it first")
    cluster = Cluster(directory, port or free_port(), address=address)
    if grpc_port is not None:
        cluster.grpc_port = grpc_port or free_port()
    environment = {**os.environ, **(env or {})}
    # As in docker-compose.yml: the instances take the client address from X-Forwarded-For
    # when their nginx (and only it) says so, unless the environment says otherwise.
    environment.setdefault("FORWARDED_ALLOW_IPS", address)
    try:
        for i in range(instances):
            app_port = free_port()
            instance_env = dict(environment)
            if cluster.grpc_port is not None:
                app_grpc_port = free_port()
                instance_env["GRPC_PORT"] = str(app_grpc_port)
                cluster.app_grpc_ports.append(app_grpc_port)
            else:
                instance_env.pop("GRPC_PORT", None)  # one port each: none from outside
            log = (directory / f"app{i}.log").open("ab")
            process = subprocess.Popen(
                [str(PYTHON), "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1",
                 "--port", str(app_port), "--timeout-graceful-shutdown", "10"],
                cwd=REPO, env=instance_env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
            cluster.app_ports.append(app_port)
            cluster.app_pids.append(process.pid)
            cluster.save()
        for url in cluster.instance_urls():
            _wait_ready(url, timeout)
        conf = render_nginx_conf(
            directory,
            cluster.port,
            cluster.app_ports,
            address,
            grpc_port=cluster.grpc_port,
            app_grpc_ports=cluster.app_grpc_ports,
        )
        subprocess.run([nginx_binary(), "-c", str(conf), "-p", str(directory)], check=True)
        _wait_ready(cluster.url, timeout)
        if cluster.grpc_port is not None:
            _wait_listening(address, cluster.grpc_port, timeout)
    except BaseException:
        stop(directory)
        raise
    return cluster


def stop(directory: Path, *, grace: float = 20) -> None:
    """Stop the nginx and app processes this directory records, and nothing else."""
    if not (directory / "cluster.json").exists():
        return
    cluster = Cluster.load(directory)
    nginx_pid = directory / "nginx.pid"
    if nginx_pid.exists():
        _terminate([int(nginx_pid.read_text().strip())], signal.SIGQUIT, grace)
    _terminate(cluster.app_pids, signal.SIGTERM, grace)
    (directory / "cluster.json").unlink()


def _terminate(pids: list[int], sig: signal.Signals, grace: float) -> None:
    alive = []
    for pid in pids:
        try:
            os.kill(pid, sig)
            alive.append(pid)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    for pid in alive:
        while time.monotonic() < deadline:
            try:
                reaped, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:  # not our child: poll for its end
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                reaped = 0
            if reaped:
                break
            time.sleep(0.1)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    start_cmd = sub.add_parser("start")
    start_cmd.add_argument("instances", type=int)
    start_cmd.add_argument("--port", type=int, default=None)
    start_cmd.add_argument(
        "--address",
        default="127.0.0.1",
        help="loopback address nginx listens on and proxies from (e.g. 127.0.0.2)",
    )
    start_cmd.add_argument(
        "--grpc-port",
        type=int,
        default=None,
        help="also gRPC: nginx listens here (0: a free port), each instance on its own",
    )
    sub.add_parser("stop")
    sub.add_parser("status")
    args = parser.parse_args()
    directory = Path(os.environ.get("CLUSTER_DIR", "/tmp/dlsms-cluster"))  # noqa: S108
    if args.command == "start":
        cluster = start(
            args.instances,
            directory=directory,
            port=args.port,
            address=args.address,
            grpc_port=args.grpc_port,
        )
        print(f"{cluster.url} -> {', '.join(cluster.instance_urls())} (state in {directory})")
        if cluster.grpc_target is not None:
            print(f"grpc {cluster.grpc_target} -> {', '.join(cluster.instance_grpc_targets())}")
    elif args.command == "stop":
        stop(directory)
        print("stopped")
    else:
        if not (directory / "cluster.json").exists():
            print("no cluster")
            sys.exit(1)
        cluster = Cluster.load(directory)
        print(f"{cluster.url} -> {', '.join(cluster.instance_urls())}")
        if cluster.grpc_target is not None:
            print(f"grpc {cluster.grpc_target} -> {', '.join(cluster.instance_grpc_targets())}")


if __name__ == "__main__":
    main()
