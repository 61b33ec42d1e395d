"""A throwaway RabbitMQ node started the way the containers start it: deploy/k8s/rabbitmq/start.sh in front.

It runs the machine's RabbitMQ (Debian's 3.10.8, the version of the rabbitmq:3.10-management
image) under its own node name, ports, data folder and Erlang cookie, all on 127.0.0.1, with
the deploy configuration: only the listeners, the definitions' path and the disk limit differ.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import NamedTuple

from tests.deploy.common import BROKER, DEPLOY

RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")


def available() -> str | None:
    """None when a node can be started here, else why not."""
    if not (RABBITMQ_BIN / "rabbitmq-server").exists():
        return f"{RABBITMQ_BIN}/rabbitmq-server not found (apt-get install rabbitmq-server)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Tls(NamedTuple):
    """The server side of an AMQPS listener: PEM files of the CA, the node's certificate and its key."""

    cacert: Path
    cert: Path
    key: Path


class BrokerNode:
    def __init__(
        self, workdir: Path, passwords: dict[str, str], *, kubernetes: bool = False, tls: Tls | None = None,
        name: str | None = None, ports: tuple[int, int, int, int] | None = None, cookie: str | None = None,
        erl_args: str = "",
    ) -> None:
        """`ports`: AMQP, management, Prometheus, Erlang distribution (free ones when not given); `cookie`: the
        Erlang cookie the nodes of a cluster share (start.sh installs it); `tls`: an AMQPS listener too; `erl_args`:
        more flags for the node's Erlang VM (RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS)."""
        self.workdir = workdir
        self.passwords = passwords
        self.kubernetes = kubernetes
        self.tls = tls
        self.cookie = cookie
        self.erl_args = erl_args
        self.name = name or f"baove-deploy-{secrets.token_hex(4)}@localhost"
        self.amqp_port, self.management_port, self.prometheus_port, self.dist_port = ports or tuple(_free_port() for _ in range(4))
        self.amqps_port = _free_port() if tls else None
        self.log = workdir / "node.log"
        self.process: subprocess.Popen | None = None

    # -- configuration -------------------------------------------------------------------

    def _conf(self) -> str:
        source = DEPLOY / ("k8s/rabbitmq/rabbitmq.conf" if self.kubernetes else "compose/rabbitmq/rabbitmq.conf")
        replaced = {
            "load_definitions": str(self.workdir / "definitions.json"),
            "listeners.tcp.default": f"127.0.0.1:{self.amqp_port}",
            "management.tcp.port": str(self.management_port),
            "prometheus.tcp.port": str(self.prometheus_port),
            # The machine's free disk is not the container volume's: do not block publishers here.
            "disk_free_limit.absolute": "50MB",
            # There is no Kubernetes API here: form a single node with the k8s settings still parsed.
            "cluster_formation.peer_discovery_backend": "classic_config",
        }
        lines, seen = [], set()
        for line in source.read_text().splitlines():
            key = line.split(" = ", 1)[0].strip()
            if not line.startswith("#") and key in replaced:
                line = f"{key} = {replaced[key]}"
                seen.add(key)
            lines.append(line)
        missing = set(replaced) - seen - {"cluster_formation.peer_discovery_backend"}
        assert not missing, f"{source} no longer sets {missing}"
        lines += ["management.tcp.ip = 127.0.0.1", "prometheus.tcp.ip = 127.0.0.1"]
        if self.tls:  # what deploy/README.md tells the operator to add for AMQPS
            lines += [
                f"listeners.ssl.default = 127.0.0.1:{self.amqps_port}",
                f"ssl_options.cacertfile = {self.tls.cacert}",
                f"ssl_options.certfile = {self.tls.cert}",
                f"ssl_options.keyfile = {self.tls.key}",
                "ssl_options.verify = verify_none",
                "ssl_options.fail_if_no_peer_cert = false",
            ]
        return "\n".join(lines) + "\n"

    def env(self) -> dict[str, str]:
        w = self.workdir
        return {
            "PATH": f"{RABBITMQ_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": str(w),
            "LANG": "C.UTF-8",
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONFIG_FILE": str(w / "rabbitmq.conf"),
            "RABBITMQ_CONFIG_FILES": str(w / "conf.d"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(w / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(w / "enabled_plugins"),
            "RABBITMQ_CONF_ENV_FILE": str(w / "rabbitmq-env.conf"),
            "RABBITMQ_MNESIA_BASE": str(w / "mnesia"),
            "RABBITMQ_LOG_BASE": str(w / "log"),
            "RABBITMQ_PLUGINS_EXPAND_DIR": str(w / "plugins-expand"),
            "RABBITMQ_PID_FILE": str(w / "node.pid"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "ERL_FLAGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }

    # -- life cycle ----------------------------------------------------------------------

    def start(self, timeout: float = 120) -> None:
        w = self.workdir
        (w / "conf.d").mkdir(parents=True, exist_ok=True)
        (w / "rabbitmq-env.conf").write_text("")
        (w / "rabbitmq.conf").write_text(self._conf())
        plugins = DEPLOY / ("k8s/rabbitmq/enabled_plugins" if self.kubernetes else "compose/rabbitmq/enabled_plugins")
        shutil.copy(plugins, w / "enabled_plugins")
        env = {
            **self.env(),
            "BAOVE_DEFINITIONS_TEMPLATE": str(BROKER / "definitions.json"),
            "BAOVE_DEFINITIONS_FILE": str(w / "definitions.json"),
            **{f"BAOVE_RABBITMQ_PASSWORD_{user.upper()}": password for user, password in self.passwords.items()},
        }
        if self.kubernetes:
            env["BAOVE_RABBITMQ_GROW_QUORUM"] = "true"
        if self.erl_args:
            env["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"] = self.erl_args
        if self.cookie:
            (w / "cookie").write_text(self.cookie)
            (w / "cookie").chmod(0o600)
            env["BAOVE_ERLANG_COOKIE_FILE"] = str(w / "cookie")
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                ["bash", str(BROKER / "start.sh"), str(RABBITMQ_BIN / "rabbitmq-server")],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the node exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if self.ctl("await_startup", "--timeout", "5", check=False).returncode == 0:
                    return
            except subprocess.TimeoutExpired:
                pass  # the CLI itself is slow on a loaded machine: ask again until the deadline
            time.sleep(1)
        raise RuntimeError(f"the node did not start within {timeout} s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.ctl("stop", check=False, timeout=60)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        # start.sh's quorum-growing loop and the node's helpers run in the session start() made.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process = None

    def ctl(self, *args: str, check: bool = True, timeout: float = 60, tool: str = "rabbitmqctl") -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(RABBITMQ_BIN / tool), "-n", self.name, *args],
            env=self.env(), capture_output=True, text=True, check=check, timeout=timeout,
        )

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:]) if self.log.exists() else ""

    def url(self, user: str, password: str | None = None) -> str:
        return f"amqp://{user}:{password or self.passwords[user]}@127.0.0.1:{self.amqp_port}/baove"

    def amqps_url(self, user: str, host: str = "127.0.0.1") -> str:
        assert self.amqps_port, "started without tls"
        return f"amqps://{user}:{self.passwords[user]}@{host}:{self.amqps_port}/baove"


def throwaway_ca(folder: Path, name: str, hosts: tuple[str, ...] = ("localhost", "127.0.0.1")) -> Tls:
    """A new CA and a server certificate it signed for `hosts`, made with openssl: for tests only."""
    folder.mkdir(parents=True, exist_ok=True)
    ca, ca_key, cert, key = (folder / f"{name}-{part}.pem" for part in ("ca", "ca-key", "server", "server-key"))
    san = ",".join(f"IP:{h}" if h.replace(".", "").isdigit() else f"DNS:{h}" for h in hosts)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN=baove test CA {name}",
            "-keyout", str(ca_key), "-out", str(ca))
    csr = folder / f"{name}-server.csr"
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={hosts[0]}", "-keyout", str(key), "-out", str(csr))
    ext = folder / f"{name}-server.ext"
    ext.write_text(f"subjectAltName = {san}\nextendedKeyUsage = serverAuth\n")
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial", "-days", "2",
            "-extfile", str(ext), "-out", str(cert))
    return Tls(ca, cert, key)
