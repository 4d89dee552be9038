"""Test hosts made of Linux network namespaces, for the network-cut fault test.

``core`` holds a bridge; each scorer host is a namespace joined to it by a veth pair, and this
process's own namespace joins it by one more (so the test can produce and check). Addresses are
in a private /24 that no route of this machine covers; no namespace has a default route, so
traffic goes only between these hosts (and each one's loopback). Everything is made with
``ip`` and removed on exit, whatever happened. Needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN).
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self


class NetnsUnavailable(RuntimeError):
    """``ip netns`` cannot work here (the reason is the message)."""


def _ip(*args: str, netns: str | None = None) -> str:
    command = ["ip", *(["-n", netns] if netns else []), *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise NetnsUnavailable(f"`{' '.join(command)}` failed: {done.stderr.strip()}")
    return done.stdout


def unavailable_reason() -> str | None:
    """Why namespaces cannot be made here, or None: tried for real (a namespace and a veth
    pair made and removed), since root in a container may still lack the capabilities."""
    if shutil.which("ip") is None:
        return "no `ip` command (iproute2)"
    if os.geteuid() != 0:
        return f"not root (uid {os.geteuid()}): `ip netns add` needs CAP_SYS_ADMIN"
    probe = f"ahprobe{os.getpid() % 100000}"
    try:
        _ip("netns", "add", probe)
        try:
            _ip("link", "add", "p0", "type", "veth", "peer", "name", "p1", netns=probe)
        finally:
            _ip("netns", "del", probe)
    except NetnsUnavailable as exc:
        return str(exc)
    return None


def free_subnet() -> ipaddress.IPv4Network:
    """A /24 of 10.213.0.0/16 that overlaps no route and no address of this namespace."""
    used = [
        ipaddress.ip_network(r["dst"], strict=False)
        for r in json.loads(_ip("-j", "-4", "route", "show", "table", "all") or "[]")
        if r.get("dst") not in (None, "default")
    ]
    for k in range(1, 255):
        net = ipaddress.IPv4Network(f"10.213.{k}.0/24")
        if not any(net.overlaps(u) for u in used):
            return net
    raise NetnsUnavailable("no free /24 in 10.213.0.0/16")


@dataclass
class HostNetwork:
    """``hosts`` namespaces joined to ``core`` by veth pairs; ``address(name)`` of each."""

    hosts: list[str]
    tag: str = field(default_factory=lambda: f"{os.getpid() % 100000}")
    made: list[str] = field(default_factory=list, init=False)
    root_link: str | None = field(default=None, init=False)
    subnet: ipaddress.IPv4Network | None = field(default=None, init=False)

    def ns(self, host: str) -> str:
        return f"ah{self.tag}{host}"

    @property
    def core(self) -> str:
        return self.ns("core")

    def address(self, host: str) -> str:
        """``core`` is .1, this process .254, the hosts .10, .11, ..."""
        assert self.subnet is not None
        index = {"core": 1, "root": 254} | {h: 10 + i for i, h in enumerate(self.hosts)}
        return str(self.subnet.network_address + index[host])

    def exec_prefix(self, host: str) -> list[str]:
        """Run a command on ``host``: ``[*prefix, command...]`` (ip execs it, same pid)."""
        return ["ip", "netns", "exec", self.ns(host)]

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        self.subnet = free_subnet()
        prefix = self.subnet.prefixlen
        for host in ["core", *self.hosts]:
            _ip("netns", "add", self.ns(host))
            self.made.append(self.ns(host))
            _ip("link", "set", "lo", "up", netns=self.ns(host))
        core = self.core
        _ip("link", "add", "br0", "type", "bridge", netns=core)
        _ip("addr", "add", f"{self.address('core')}/{prefix}", "dev", "br0", netns=core)
        _ip("link", "set", "br0", "up", netns=core)
        for i, host in enumerate(self.hosts):
            port = f"h{i}"  # its end in core, attached to the bridge
            _ip("link", "add", "eth0", "type", "veth", "peer", "name", port, netns=self.ns(host))
            _ip("link", "set", port, "netns", core, netns=self.ns(host))
            _ip("link", "set", port, "master", "br0", "up", netns=core)
            addr = f"{self.address(host)}/{prefix}"
            _ip("addr", "add", addr, "dev", "eth0", netns=self.ns(host))
            _ip("link", "set", "eth0", "up", netns=self.ns(host))
        # this process's way in: one more veth, its end here named after the tag
        self.root_link = f"ahr{self.tag}"
        _ip("link", "add", self.root_link, "type", "veth", "peer", "name", "root", "netns", core)
        _ip("link", "set", "root", "master", "br0", "up", netns=core)
        _ip("addr", "add", f"{self.address('root')}/{prefix}", "dev", self.root_link)
        _ip("link", "set", self.root_link, "up")

    def cut(self, host: str) -> None:
        """Pull ``host``'s cable: its bridge port goes down, packets are dropped silently (no
        reset reaches either side, as in a real partition)."""
        _ip("link", "set", f"h{self.hosts.index(host)}", "down", netns=self.core)

    def mend(self, host: str) -> None:
        _ip("link", "set", f"h{self.hosts.index(host)}", "up", netns=self.core)

    def stop(self) -> None:
        errors = []
        if self.root_link is not None:
            try:
                _ip("link", "del", self.root_link)
            except NetnsUnavailable as exc:
                errors.append(str(exc))
            self.root_link = None
        for name in reversed(self.made):  # deleting a namespace deletes its veth ends
            try:
                _ip("netns", "del", name)
            except NetnsUnavailable as exc:
                errors.append(str(exc))
        self.made.clear()
        if errors:
            raise NetnsUnavailable("; ".join(errors))
