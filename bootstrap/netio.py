"""Bytes one process moved over TCP, read from the kernel's own per-socket counters.

The bootstrap's network traffic all flows through its p2pd daemon, and
neither p2pd nor hivemind counts bytes, and Linux keeps no per-process
network totals. The kernel does keep, for every TCP socket, the payload bytes
received and the payload bytes the peer acknowledged (tcp_info's
bytes_received and bytes_acked, RFC 4898). We read them with a sock_diag
netlink dump, keep the sockets whose inodes the process holds open, and add
each closed socket's last reading to a running total.

What the figures count: TCP payload of the process's sockets, so libp2p
framing and TLS/Noise overhead are in, TCP/IP headers and retransmissions are
out. What they miss: bytes a socket moved after the last sample before it
closed, and connections that opened and closed between two samples, so they
are a lower bound, close for the long-lived connections a DHT keeps. UDP
(QUIC) is not counted: the bootstrap listens on TCP only.
"""

from __future__ import annotations

import os
import socket
import struct
from dataclasses import dataclass, field

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
INET_DIAG_INFO = 2
ALL_STATES = 0xFFFFFFFF
NLMSG_HEADER = struct.Struct("=IHHII")
DIAG_REQUEST = struct.Struct("=BBBBI48x")  # inet_diag_req_v2 with a zero socket id: every socket
DIAG_MSG_BYTES, DIAG_INODE_OFFSET = 72, 68  # sizeof(struct inet_diag_msg), offsetof(idiag_inode)
TCPI_BYTES_ACKED = 120  # offsetof(struct tcp_info, tcpi_bytes_acked); bytes_received follows it
TCPI_MIN_BYTES = TCPI_BYTES_ACKED + 16


def _align(n: int) -> int:
    return (n + 3) & ~3


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue  # closed while we looked
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def _parse_attrs(payload: bytes) -> tuple[int, int] | None:
    """(received, acked) from a diag message's INET_DIAG_INFO attribute, if the kernel sent one."""
    offset = DIAG_MSG_BYTES
    while offset + 4 <= len(payload):
        length, kind = struct.unpack_from("=HH", payload, offset)
        if length < 4:
            return None
        if kind == INET_DIAG_INFO and length - 4 >= TCPI_MIN_BYTES:
            acked, received = struct.unpack_from("=QQ", payload, offset + 4 + TCPI_BYTES_ACKED)
            return received, acked
        offset += _align(length)
    return None


def tcp_counters(family: int) -> dict[int, tuple[int, int]]:
    """inode -> (bytes received, bytes acked) for every TCP socket of one address family."""
    request = DIAG_REQUEST.pack(family, socket.IPPROTO_TCP, 1 << (INET_DIAG_INFO - 1), 0, ALL_STATES)
    header = NLMSG_HEADER.pack(NLMSG_HEADER.size + len(request), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, 1, 0)
    counters: dict[int, tuple[int, int]] = {}
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG) as sock:
        sock.send(header + request)
        while True:
            data = sock.recv(1 << 16)
            offset = 0
            while offset + NLMSG_HEADER.size <= len(data):
                length, kind, _flags, _seq, _pid = NLMSG_HEADER.unpack_from(data, offset)
                if length < NLMSG_HEADER.size:
                    raise OSError("malformed netlink reply")
                if kind == NLMSG_DONE:
                    return counters
                if kind == NLMSG_ERROR:
                    (errno,) = struct.unpack_from("=i", data, offset + NLMSG_HEADER.size)
                    raise OSError(-errno, "sock_diag dump failed")
                payload = data[offset + NLMSG_HEADER.size : offset + length]
                if len(payload) >= DIAG_MSG_BYTES:
                    (inode,) = struct.unpack_from("=I", payload, DIAG_INODE_OFFSET)
                    found = _parse_attrs(payload)
                    if found is not None:
                        counters[inode] = found
                offset += _align(length)


@dataclass
class TcpTraffic:
    """Running totals of one process's TCP payload bytes; call `sample` every few seconds."""

    pid: int
    _live: dict[int, tuple[int, int]] = field(default_factory=dict)
    _closed: tuple[int, int] = (0, 0)

    def sample(self) -> tuple[int, int]:
        """(bytes in, bytes out) so far. Raises OSError where sock_diag or /proc is unavailable."""
        owned = _socket_inodes(self.pid)
        now = {}
        for family in (socket.AF_INET, socket.AF_INET6):
            now.update({inode: c for inode, c in tcp_counters(family).items() if inode in owned})
        closed_in, closed_out = self._closed
        for inode, (rx, tx) in self._live.items():
            if inode not in now:
                closed_in, closed_out = closed_in + rx, closed_out + tx
        self._closed = (closed_in, closed_out)
        self._live = now
        return closed_in + sum(rx for rx, _ in now.values()), closed_out + sum(tx for _, tx in now.values())
