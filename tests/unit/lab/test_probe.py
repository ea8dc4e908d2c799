"""Probes and servers on loopback (no root needed): real sockets, real daemon, real stop.

ICMP needs a raw socket and so root; it runs in tests/integration/test_lab_topology.py. Here:
TCP and UDP probes against the lab's own server code, the JSON runner module, the daemon's
start/stop cycle, and the ICMP packet logic on hand-made packets.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from egressguard.adapters import netns, probe
from egressguard.adapters.probe import Probe, ProbeResult, ServerSpec
from egressguard.errors import DataplaneError


def _free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def loopback_server() -> Iterator[ServerSpec]:
    """The lab's servers on 127.0.0.1 with free high ports, in a thread of this process."""
    spec = ServerSpec(
        addresses=("127.0.0.1",),
        tcp=(_free_port(socket.SOCK_STREAM),),
        udp=(_free_port(socket.SOCK_DGRAM),),
        max_lifetime=60,
    )
    socks = probe.open_server_sockets(spec)
    stop = threading.Event()
    thread = threading.Thread(
        target=probe.serve,
        args=(socks,),
        kwargs={"banner": spec.banner, "max_lifetime": 60, "should_stop": stop.is_set},
    )
    thread.start()
    try:
        yield spec
    finally:
        stop.set()
        thread.join(timeout=5)
        assert not thread.is_alive()


def test_tcp_probe_reads_the_servers_banner(loopback_server: ServerSpec) -> None:
    port = loopback_server.tcp[0]
    result = probe.run_probe(Probe("pod1", "tcp", "127.0.0.1", port, 2.0))
    assert result.ok, result.detail
    assert result.detail == f"connected: egressguard-lab tcp 127.0.0.1 {port}"


def test_udp_probe_gets_its_payload_echoed(loopback_server: ServerSpec) -> None:
    result = probe.run_probe(Probe("pod1", "udp", "127.0.0.1", loopback_server.udp[0], 2.0))
    assert (result.ok, result.detail) == (True, "echo received")


def test_closed_ports_are_refused_not_timed_out() -> None:
    tcp = probe.run_probe(Probe("pod1", "tcp", "127.0.0.1", _free_port(socket.SOCK_STREAM), 2.0))
    udp = probe.run_probe(Probe("pod1", "udp", "127.0.0.1", _free_port(socket.SOCK_DGRAM), 2.0))
    assert (tcp.ok, tcp.detail) == (False, "refused")
    assert (udp.ok, udp.detail) == (False, "refused")


def test_a_tcp_server_without_the_banner_does_not_count(loopback_server: ServerSpec) -> None:
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        port = srv.getsockname()[1]

        def answer() -> None:
            conn, _ = srv.accept()
            with conn:
                conn.sendall(b"SSH-2.0-something\r\n")

        t = threading.Thread(target=answer)
        t.start()
        result = probe.run_probe(Probe("pod1", "tcp", "127.0.0.1", port, 2.0))
        t.join(timeout=5)
    assert not result.ok
    assert "unexpected banner" in result.detail


def test_the_module_runs_a_batch_from_json(loopback_server: ServerSpec) -> None:
    probes = [
        Probe("pod1", "tcp", "127.0.0.1", loopback_server.tcp[0], 2.0),
        Probe("pod1", "udp", "127.0.0.1", loopback_server.udp[0], 2.0),
        Probe("pod2", "tcp", "127.0.0.1", _free_port(socket.SOCK_STREAM), 2.0),
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "egressguard.adapters.probe", "probe"],
        input=json.dumps({"probes": [p.to_json() for p in probes]}).encode(),
        capture_output=True,
        timeout=30,
        check=True,
    )
    results = [ProbeResult.from_json(r) for r in json.loads(proc.stdout)["results"]]
    assert [r.probe for r in results] == probes
    assert [r.ok for r in results] == [True, True, False]


def test_the_module_rejects_bad_input() -> None:
    for stdin in (b"not json", b'{"probes": [{"pod": "p", "proto": "sctp", "dst": "127.0.0.1"}]}'):
        proc = subprocess.run(
            [sys.executable, "-m", "egressguard.adapters.probe", "probe"],
            input=stdin,
            capture_output=True,
            timeout=30,
            check=False,
        )
        assert proc.returncode == 2
        assert proc.stdout == b""


def test_server_daemon_starts_listening_and_stops() -> None:
    spec = ServerSpec(
        addresses=("127.0.0.1",), tcp=(_free_port(socket.SOCK_STREAM),), udp=(), max_lifetime=60
    )
    pid = probe.start_servers(netns.SubprocessNetnsRunner(), None, spec)
    ref = netns.process_ref(pid, ns="host", role="servers")
    try:
        assert pid != os.getpid()
        # Listening already when start_servers returns: no wait, no retry.
        result = probe.run_probe(Probe("pod1", "tcp", "127.0.0.1", spec.tcp[0], 2.0))
        assert result.ok, result.detail
    finally:
        assert netns.stop_process(ref, timeout=5)
    assert not netns.process_alive(ref)
    after = probe.run_probe(Probe("pod1", "tcp", "127.0.0.1", spec.tcp[0], 2.0))
    assert after.detail == "refused"


def test_server_daemon_reports_a_port_it_cannot_bind() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        spec = ServerSpec(addresses=("127.0.0.1",), tcp=(busy.getsockname()[1],), udp=())
        runner = netns.SubprocessNetnsRunner()
        with pytest.raises(DataplaneError, match="cannot listen"):
            probe.start_servers(runner, None, spec)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"proto": "sctp", "dst": "192.0.2.1", "port": 1}, "protocol"),
        ({"proto": "icmp", "dst": "192.0.2.1", "port": 80}, "no port"),
        ({"proto": "tcp", "dst": "192.0.2.1", "port": None}, "needs a port"),
        ({"proto": "udp", "dst": "192.0.2.1", "port": 70000}, "needs a port"),
        ({"proto": "tcp", "dst": "example.com", "port": 80}, "does not appear"),
        ({"proto": "tcp", "dst": "192.0.2.1", "port": 80, "timeout": 0}, "timeout"),
        ({"proto": "tcp", "dst": "192.0.2.1", "port": 80, "timeout": 99}, "timeout"),
    ],
)
def test_invalid_probes_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Probe(pod="pod1", **kwargs)  # type: ignore[arg-type]


def test_probe_values_round_trip_and_label() -> None:
    p6 = Probe("pod2", "udp", "2001:db8:203:113::10", 53, 1.5)
    p4 = Probe("pod1", "icmp", "203.0.113.10")
    for p in (p4, p6):
        assert Probe.from_json(json.loads(json.dumps(p.to_json()))) == p
    assert p6.label() == "udp [2001:db8:203:113::10]:53"
    assert (p4.label(), p4.family, p6.family) == ("icmp 203.0.113.10", 4, 6)


def test_icmp_checksum_matches_rfc1071_example() -> None:
    # RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum (one's complement) to ddf2.
    assert probe.icmp_checksum(bytes.fromhex("0001f203f4f5f6f7")) == (~0xDDF2 & 0xFFFF)
    # A packet carrying its own checksum sums to zero; odd lengths are zero-padded.
    data = bytes.fromhex("0800000012340001") + b"abc"
    csum = probe.icmp_checksum(data)
    whole = data[:2] + struct.pack("!H", csum) + data[4:]
    assert probe.icmp_checksum(whole) == 0


def _ipv4_header(src: str, dst: str, proto: int = 1) -> bytes:
    return struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        0,
        0,
        0,
        64,
        proto,
        0,
        socket.inet_aton(src),
        socket.inet_aton(dst),
    )


def test_icmp_matching_accepts_only_our_reply() -> None:
    target = ipaddress.ip_address("203.0.113.10")
    payload = b"egressguard-probe 0123"
    reply = struct.pack("!BBHHH", 0, 0, 0, 77, 1) + payload
    packet = _ipv4_header("203.0.113.10", "198.51.100.11") + reply

    def match(data: bytes, src: str = "203.0.113.10", ident: int = 77) -> object:
        return probe._match_icmp(4, data, src, target=target, ident=ident, seq=1, payload=payload)

    assert match(packet) == (True, "echo reply")
    assert match(packet, ident=78) is None, "another probe's reply"
    assert match(packet, src="203.0.113.11") is None, "a reply from elsewhere"
    other_payload = _ipv4_header("203.0.113.10", "198.51.100.11") + reply[:8] + b"x"
    assert match(other_payload) is None


def test_icmp_errors_quoting_our_request_are_reported() -> None:
    request = struct.pack("!BBHHH", 8, 0, 0, 77, 1) + b"egress"
    quoted = _ipv4_header("198.51.100.11", "203.0.113.10") + request[:8]
    error = struct.pack("!BBHI", 3, 13, 0, 0) + quoted
    packet = _ipv4_header("198.51.100.1", "198.51.100.11") + error
    verdict = probe._match_icmp(
        4,
        packet,
        "198.51.100.1",
        target=ipaddress.ip_address("203.0.113.10"),
        ident=77,
        seq=1,
        payload=b"egress",
    )
    assert verdict == (False, "unreachable (type 3 code 13 from 198.51.100.1)")


def test_icmpv6_errors_quote_after_a_fixed_40_byte_header() -> None:
    request = struct.pack("!BBHHH", 128, 0, 0, 9, 1) + b"p"
    quoted = bytes(40) + request
    error = struct.pack("!BBHI", 1, 1, 0, 0) + quoted
    verdict = probe._match_icmp(
        6,
        error,
        "2001:db8:198:51::1",
        target=ipaddress.ip_address("2001:db8:203:113::10"),
        ident=9,
        seq=1,
        payload=b"p",
    )
    assert verdict == (False, "unreachable (type 1 code 1 from 2001:db8:198:51::1)")
