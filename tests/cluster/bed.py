"""The cluster test bed: three RabbitMQ nodes clustered on this machine, HAProxy in front, two replicas of each service.

Each node is the machine's RabbitMQ started through deploy/k8s/rabbitmq/start.sh with the Kubernetes configuration
(pause_minority), its own node name, ports and data folder, and one Erlang cookie for the three
(tests/deploy/broker_node.py). Nodes 2 and 3 join node 1 (`rabbitmqctl join_cluster`), and every baove quorum queue
is grown onto all three (`rabbitmq-queues grow`), as start.sh's BAOVE_RABBITMQ_GROW_QUORUM does on Kubernetes.
The services reach the cluster through HAProxy (Debian's package, TCP mode), as they would through a Kubernetes
Service: one address, the node behind it chosen among those that accept connections.
"""

from __future__ import annotations

import re
import secrets
import shutil
import subprocess
import time
from pathlib import Path

import httpx

from shared.topology import CONSUMER_QUEUES
from tests.deploy.broker_node import BrokerNode

VHOST = "baove"
USERS = ("ops", "intake", "routing", "reporting")
# Far from the shared broker (5672/15672/25672) and from the browser tests (19001-19004).
AMQP_PORTS = (5701, 5702, 5703)
PROXY_PORT = 5700
# Three Erlang VMs share this machine's cores with six services and PostgreSQL: schedulers that sleep when idle
# instead of spinning (the default busy wait) leave that CPU to the others. A node of its own keeps the default.
SHARED_HOST_ERL_ARGS = "+sbwt none +sbwtdcpu none +sbwtdio none"


def haproxy() -> str | None:
    return shutil.which("haproxy") or next((p for p in ("/usr/sbin/haproxy",) if Path(p).exists()), None)


class Cluster:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.passwords = {user: secrets.token_hex(16) for user in USERS}
        self.cookie = cookie = secrets.token_hex(20)
        self.nodes = [
            BrokerNode(
                workdir / f"node{i + 1}",
                self.passwords,
                kubernetes=True,
                name=f"baove-cluster{i + 1}@localhost",
                ports=(AMQP_PORTS[i], 15701 + i, 15791 + i, 25701 + i),
                cookie=cookie,
                erl_args=SHARED_HOST_ERL_ARGS,
            )
            for i in range(3)
        ]
        self.proxy: subprocess.Popen | None = None
        self.isolated: BrokerNode | None = None  # the node `cut_off` partitioned, until `heal`

    # -- life cycle ----------------------------------------------------------------------

    def start(self) -> None:
        for node in self.nodes:
            node.workdir.mkdir(parents=True, exist_ok=True)
        for node in self.nodes:
            node.start()
        first = self.nodes[0]
        for node in self.nodes[1:]:
            node.ctl("stop_app")
            node.ctl("reset")
            node.ctl("join_cluster", first.name)
            node.ctl("start_app")
        for node in self.nodes:
            first.ctl("grow", node.name, "all", "--vhost-pattern", f"^{VHOST}$", "--queue-pattern", ".*", tool="rabbitmq-queues")
        self.start_proxy()

    def start_proxy(self) -> None:
        config = self.workdir / "haproxy.cfg"
        servers = "\n".join(
            f"  server node{i + 1} 127.0.0.1:{port} check inter 500 fall 2 rise 2 on-marked-down shutdown-sessions"
            for i, port in enumerate(AMQP_PORTS)
        )
        config.write_text(
            "global\n  maxconn 4000\n"
            "defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 3h\n  timeout server 3h\n  option redispatch\n  retries 3\n"
            f"listen amqp\n  bind 127.0.0.1:{PROXY_PORT}\n  balance roundrobin\n{servers}\n"
        )
        with open(self.workdir / "haproxy.log", "wb") as log:
            self.proxy = subprocess.Popen([haproxy(), "-db", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        if self.proxy is not None:
            self.proxy.terminate()
            self.proxy.wait(10)
            self.proxy = None
        for node in reversed(self.nodes):
            node.stop()

    # -- what the scenarios ask ------------------------------------------------------------

    def url(self, user: str) -> str:
        """A user's URL through the proxy."""
        return f"amqp://{user}:{self.passwords[user]}@127.0.0.1:{PROXY_PORT}/{VHOST}"

    def running(self) -> list[BrokerNode]:
        """The nodes started and not cut off (the minority's node would answer for itself alone)."""
        return [node for node in self.nodes if node.process is not None and node is not self.isolated]

    def api(self, path: str, node: BrokerNode | None = None):
        """GET a management API path (as `ops`) from a running node: far cheaper than a rabbitmqctl call (a new Erlang
        VM each time, seconds of CPU on a loaded machine), so the scenarios may poll."""
        node = node or self.running()[0]
        answer = httpx.get(f"http://127.0.0.1:{node.management_port}/api/{path}", auth=("ops", self.passwords["ops"]), timeout=10)
        answer.raise_for_status()
        return answer.json()

    def queues(self) -> dict[str, dict[str, str]]:
        """Each baove queue's leader and members, as a running node sees them."""
        found = self.api(f"queues/{VHOST}?columns=name,leader,members")
        return {q["name"]: {"leader": q.get("leader", ""), "members": " ".join(q.get("members", []))} for q in found}

    def members(self, queue: str) -> set[str]:
        return set(re.findall(r"baove-cluster\d@localhost", self.queues()[queue]["members"]))

    def leader_of(self, queue: str) -> BrokerNode:
        leader = self.queues()[queue]["leader"]
        return next(node for node in self.nodes if node.name == leader)

    def fully_replicated(self) -> bool:
        queues = self.queues()
        return all(len(set(re.findall(r"baove-cluster\d@localhost", queues[q.name]["members"]))) == 3 for q in CONSUMER_QUEUES)

    def purge(self) -> None:
        """Empty the consumer queues and their dead letters, between scenarios."""
        node = self.running()[0]
        for q in CONSUMER_QUEUES:
            for name in (q.name, f"{q.name}.dlq"):
                node.ctl("purge_queue", "-p", VHOST, name, check=False)

    def cut_off(self, node: BrokerNode) -> None:
        """Partition `node` from the other two: each side's Erlang distribution refuses the other from now on.

        On the cut-off node the cookie it expects from (and offers to) each other node becomes a wrong one
        (`erlang:set_cookie/2`), then its links to them are closed (`erlang:disconnect_node/1`): both sides see the
        other go down at once, and every reconnection (RabbitMQ's, Ra's, Mnesia's, in either direction) fails the
        handshake until `heal`. The AMQP listeners stay reachable, as in a real partition where the clients still
        reach the minority node; the command-line tools (their own cookie) reach every node throughout."""
        others = [n for n in self.nodes if n is not node]
        self.isolated = node
        node.ctl(
            "eval",
            "".join(f"erlang:set_cookie('{o.name}', baove_partitioned), " for o in others)
            + ", ".join(f"erlang:disconnect_node('{o.name}')" for o in others)
            + ".",
        )

    def heal(self, node: BrokerNode) -> None:
        """End `cut_off`: the cluster's cookie again for the other nodes, and a ping to each to reconnect at once."""
        others = [n for n in self.nodes if n is not node]
        node.ctl(
            "eval",
            "".join(f"erlang:set_cookie('{o.name}', '{self.cookie}'), " for o in others)
            + ", ".join(f"net_adm:ping('{o.name}')" for o in others)
            + ".",
        )
        self.isolated = None

    def rabbit_running(self, node: BrokerNode) -> bool:
        """Whether the RabbitMQ application runs on `node`: its management listener answers (pause_minority stops both)."""
        try:
            self.api("overview", node)
        except httpx.HTTPError:
            return False
        return True

    def partitions(self) -> dict[str, list[str]]:
        """The partitions each running node remembers, by node (none once healed: pause_minority restarts the minority)."""
        return {n["name"]: n["partitions"] for n in self.api("nodes") if n.get("partitions")}

    def restart_node(self, node: BrokerNode, *, drain: bool) -> float:
        """Stop a node (after the preStop hook's checks and drain when `drain`) and start it again; seconds it was away."""
        if drain:
            node.ctl("await_online_quorum_plus_one", "-t", "120", tool="rabbitmq-upgrade", timeout=150)
            node.ctl("drain", "-t", "50", tool="rabbitmq-upgrade", timeout=80)
        stopped = time.monotonic()
        node.stop()
        node.start(timeout=300)
        node.ctl("revive", tool="rabbitmq-upgrade", check=False)
        return time.monotonic() - stopped
