"""Hosts for the fault harness: one network namespace per process, each with a TAP port on the switch.

A host is what a machine is to a deployment: its own address (10.77.0.x), its own loopback, its own
uplink. A NAT host is two namespaces: the node's, on a private 192.168.x.0/24 link, behind a router
namespace that holds the public address and masquerades (nftables), so the node can dial out and
nothing can dial in, as behind a home router.

Needs root (CAP_NET_ADMIN), /dev/net/tun, iproute2, and nftables for NAT hosts.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from devnet.faults.wire import Switch

PREFIX = "10.77"


class HostError(RuntimeError):
    """The machine cannot give the harness namespaces (not root, no /dev/net/tun, no iproute2)."""


def ip(*args: str, netns: str | None = None) -> None:
    command = ["ip", *(["-n", netns] if netns else []), *args]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise HostError(f"{' '.join(command)}: {done.stderr.strip()}")


def in_netns(netns: str, *command: str) -> None:
    done = subprocess.run(["ip", "netns", "exec", netns, *command], capture_output=True, text=True)
    if done.returncode != 0:
        raise HostError(f"{netns}: {' '.join(command)}: {done.stderr.strip()}")


def missing_tools() -> str:
    """Why this machine cannot run the harness, or "" when it can."""
    if shutil.which("ip") is None:
        return "iproute2 (ip) is not installed"
    if not Path("/dev/net/tun").exists():
        return "/dev/net/tun is missing"
    probe = f"gfprobe{id(object()) % 10000}"
    try:
        ip("netns", "add", probe)
    except HostError as e:
        return f"cannot create network namespaces: {e}"
    ip("netns", "del", probe)
    return ""


@dataclass(frozen=True)
class Host:
    name: str
    netns: str  # where its processes run
    address: str  # where others reach it (a NAT host's router address: nothing listens there)
    port: str  # its TAP port on the switch (in its namespace, or its router's)
    shaped_in: str  # the namespace whose TAP carries its uplink

    def command(self, *argv: str) -> list[str]:
        """`argv` run inside this host's namespace."""
        return ["ip", "netns", "exec", self.netns, *argv]

    def limit_uplink(self, mbit: float | None) -> None:
        """A token-bucket uplink of `mbit` Mbit/s on its TAP (kernel tbf), or none."""
        with contextlib.suppress(HostError):
            in_netns(self.shaped_in, "tc", "qdisc", "del", "dev", self.port, "root")
        if mbit is not None:
            burst = max(16, int(mbit * 1000 / 8 / 50))  # kbit: 20 ms of the rate, at least one jumbo
            in_netns(
                self.shaped_in,
                "tc",
                "qdisc",
                "add",
                "dev",
                self.port,
                "root",
                "tbf",
                "rate",
                f"{mbit}mbit",
                "burst",
                f"{burst}kb",
                "latency",
                "400ms",
            )


class Network:
    """The namespaces and the switch of one harness run; `close` removes every namespace it made."""

    def __init__(self, tag: str, seed: int) -> None:
        self.tag = tag
        self.switch = Switch(seed=seed)
        self.hosts: dict[str, Host] = {}
        self._namespaces: list[str] = []

    def add_host(self, name: str, nat: bool = False) -> Host:
        index = len(self.hosts) + 2
        port, address = f"gf{self.tag}p{index}", f"{PREFIX}.0.{index}"
        outer = f"gf-{self.tag}-{name}" + ("-gw" if nat else "")
        self._namespace(outer)
        self.switch.add_port(port)
        ip("link", "set", port, "netns", outer)
        ip("addr", "add", f"{address}/16", "dev", port, netns=outer)
        ip("link", "set", port, "mtu", "1500", "up", netns=outer)
        host = Host(name, outer, address, port, outer)
        if nat:
            host = self._behind_nat(host, index)
        self.hosts[name] = host
        return host

    def _behind_nat(self, router: Host, index: int) -> Host:
        inner = f"gf-{self.tag}-{router.name}"
        self._namespace(inner)
        lan, wan = f"gf{self.tag}l{index}", f"gf{self.tag}w{index}"
        ip("link", "add", lan, "type", "veth", "peer", "name", wan)
        ip("link", "set", lan, "netns", inner)
        ip("link", "set", wan, "netns", router.netns)
        ip("addr", "add", f"192.168.{index}.2/24", "dev", lan, netns=inner)
        ip("link", "set", lan, "up", netns=inner)
        ip("route", "add", "default", "via", f"192.168.{index}.1", netns=inner)
        ip("addr", "add", f"192.168.{index}.1/24", "dev", wan, netns=router.netns)
        ip("link", "set", wan, "up", netns=router.netns)
        in_netns(router.netns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        rules = (
            "table ip nat {\n"
            " chain post { type nat hook postrouting priority 100; "
            f'oifname "{router.port}" ip saddr 192.168.{index}.0/24 masquerade; }}\n'
            "}\n"
        )
        done = subprocess.run(["ip", "netns", "exec", router.netns, "nft", "-f", "-"], input=rules, capture_output=True, text=True)
        if done.returncode != 0:
            raise HostError(f"nftables masquerade in {router.netns}: {done.stderr.strip()}")
        return Host(router.name, inner, router.address, router.port, router.netns)

    def _namespace(self, name: str) -> None:
        with contextlib.suppress(HostError):
            ip("netns", "del", name)  # left over from a run that was killed
        ip("netns", "add", name)
        self._namespaces.append(name)
        ip("link", "set", "lo", "up", netns=name)

    def leftovers(self, grace: float = 0.0) -> dict[str, list[int]]:
        """Processes still running in each namespace `grace` seconds from now at the latest (after every
        member was reaped: orphans; a DHT process needs a second to see its parent gone)."""
        deadline = time.monotonic() + grace
        while True:
            found = {}
            for name in self._namespaces:
                done = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True)
                if pids := [int(pid) for pid in done.stdout.split()]:
                    found[name] = pids
            if not found or time.monotonic() >= deadline:
                return found
            time.sleep(0.5)

    def close(self) -> None:
        for pids in self.leftovers().values():
            for pid in pids:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
        self.switch.stop()
        for name in reversed(self._namespaces):
            with contextlib.suppress(HostError):
                ip("netns", "del", name)
