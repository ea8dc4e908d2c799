"""The in-Job probe runner, for real, against loopback only: listeners this test opens on
127.0.0.1 (and ::1), closed ports, and a listener whose full accept queue drops SYNs."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from egressguard.adapters import verify_probe as vp
from egressguard.adapters.verify_probe import Outcome, ProbeSpec


def free_port(kind: socket.SocketKind, host: str = "127.0.0.1") -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, kind) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def tcp_listener() -> Iterator[int]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    try:
        yield s.getsockname()[1]
    finally:
        s.close()


@pytest.fixture
def dropping_listener() -> Iterator[int]:
    """A listener with a full accept queue: Linux drops further SYNs, so connects time out
    (what a DROP rule looks like to the client)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(0)
    port = s.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port), timeout=2)
    try:
        yield port
    finally:
        filler.close()
        s.close()


@pytest.fixture
def udp_echo() -> Iterator[int]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                data, peer = s.recvfrom(2048)
            except TimeoutError:
                continue
            s.sendto(data, peer)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        yield s.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        s.close()


def spec(proto: str, port: int, *, dst: str = "127.0.0.1", timeout: float = 1.0) -> ProbeSpec:
    return ProbeSpec(0, proto, dst, port, timeout)  # type: ignore[arg-type]


def test_tcp_to_a_listener_connects(tcp_listener: int) -> None:
    result = vp.run_probe(spec("tcp", tcp_listener))
    assert (result.outcome, result.detail) == (Outcome.CONNECTED, "handshake completed")


def test_tcp_to_a_closed_port_is_refused() -> None:
    result = vp.run_probe(spec("tcp", free_port(socket.SOCK_STREAM)))
    assert result.outcome is Outcome.REFUSED


def test_tcp_to_a_dropping_listener_times_out(dropping_listener: int) -> None:
    result = vp.run_probe(spec("tcp", dropping_listener, timeout=0.5))
    assert result.outcome is Outcome.TIMEOUT
    assert result.detail == "no answer within 0.5s"


def test_udp_with_an_answer_connects(udp_echo: int) -> None:
    assert vp.run_probe(spec("udp", udp_echo)).outcome is Outcome.CONNECTED


def test_udp_to_a_closed_port_is_refused() -> None:
    # Loopback answers with ICMP port unreachable, which a connected UDP socket reports.
    assert vp.run_probe(spec("udp", free_port(socket.SOCK_DGRAM))).outcome is Outcome.REFUSED


def test_udp_silence_times_out_and_says_it_is_ambiguous() -> None:
    quiet = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    quiet.bind(("127.0.0.1", 0))
    try:
        result = vp.run_probe(spec("udp", quiet.getsockname()[1], timeout=0.3))
    finally:
        quiet.close()
    assert result.outcome is Outcome.TIMEOUT
    assert "UDP silence" in result.detail


def test_ipv6_loopback() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 in this kernel")
    try:
        port = free_port(socket.SOCK_STREAM, "::1")
    except OSError:
        pytest.skip("::1 is not configured here")
    result = vp.run_probe(spec("tcp", port, dst="::1"))
    assert result.outcome is Outcome.REFUSED
    assert result.dst == "::1"


def test_the_dns_query_is_the_rfc_1035_root_ns_query() -> None:
    # Hand-assembled from RFC 1035 §4.1.1/4.1.2: ID, flags with RD (0x0100), QDCOUNT=1,
    # ANCOUNT=NSCOUNT=ARCOUNT=0; QNAME root (0x00), QTYPE NS (2), QCLASS IN (1).
    expected = bytes.fromhex("1234 0100 0001 0000 0000 0000 00 0002 0001")
    assert vp.dns_root_query(0x1234) == expected


def test_run_probes_writes_lines_that_parse_back_complete(
    tcp_listener: int, dropping_listener: int
) -> None:
    probes = [
        ProbeSpec(0, "tcp", "127.0.0.1", tcp_listener, 1.0),
        ProbeSpec(1, "tcp", "127.0.0.1", dropping_listener, 0.5),
        ProbeSpec(2, "tcp", "127.0.0.1", free_port(socket.SOCK_STREAM), 1.0),
    ]
    lines: list[str] = []
    outcomes = vp.run_probes("r1", probes, lines.append)
    assert [o.outcome for o in outcomes] == [Outcome.CONNECTED, Outcome.TIMEOUT, Outcome.REFUSED]
    assert json.loads(lines[0]) == {
        "egressguard-verify": "start",
        "run": "r1",
        "version": 1,
        "probes": 3,
    }
    assert json.loads(lines[-1]) == {"egressguard-verify": "end", "run": "r1", "results": 3}
    parsed = vp.parse_log("\n".join(lines), "r1")
    assert parsed.complete
    assert {i: r.outcome for i, r in parsed.results.items()} == {
        0: Outcome.CONNECTED,
        1: Outcome.TIMEOUT,
        2: Outcome.REFUSED,
    }


def test_main_reads_the_plan_from_the_environment(tcp_listener: int) -> None:
    plan = vp.encode_plan("r2", "default", [ProbeSpec(0, "tcp", "127.0.0.1", tcp_listener, 1.0)])
    out = io.StringIO()
    assert vp.main({vp.PLAN_ENV: plan}, out) == 0
    parsed = vp.parse_log(out.getvalue(), "r2")
    assert parsed.complete
    assert parsed.results[0].outcome is Outcome.CONNECTED


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({}, "the plan is missing"),
        ({vp.PLAN_ENV: "{not json"}, "not JSON"),
        ({vp.PLAN_ENV: '{"version": 2, "run": "r", "probes": []}'}, "plan version 2"),
    ],
)
def test_main_refuses_a_missing_or_bad_plan(
    environ: dict[str, str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = io.StringIO()
    assert vp.main(environ, out) == 2
    assert out.getvalue() == ""
    assert message in capsys.readouterr().err


def test_the_command_the_job_runs(tcp_listener: int) -> None:
    """``egressguard verify probe`` as a process, with only the env a container would have."""
    plan = vp.encode_plan("r3", "default", [ProbeSpec(0, "tcp", "127.0.0.1", tcp_listener, 1.0)])
    env = {vp.PLAN_ENV: plan, "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    done = subprocess.run(
        [sys.executable, "-m", "egressguard", "verify", "probe"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert vp.parse_log(done.stdout, "r3").results[0].outcome is Outcome.CONNECTED


@pytest.mark.parametrize(
    ("probes", "message"),
    [
        ('"x"', "must be a list"),
        ('["x"]', "probes\\[0\\] is not an object"),
        ('[{"index": true, "proto": "tcp", "dst": "192.0.2.1", "port": 1, "timeout": 1}]', "index"),
        ('[{"index": 0, "proto": "icmp", "dst": "192.0.2.1", "port": 1, "timeout": 1}]', "tcp or"),
        ('[{"index": 0, "proto": "tcp", "dst": "example.com", "port": 1, "timeout": 1}]', "dst"),
        ('[{"index": 0, "proto": "tcp", "dst": "192.0.2.1", "port": 0, "timeout": 1}]', "port"),
        ('[{"index": 0, "proto": "tcp", "dst": "192.0.2.1", "port": 1, "timeout": 99}]', "timeout"),
        (
            '[{"index": 0, "proto": "tcp", "dst": "192.0.2.1", "port": 1, "timeout": 1},'
            ' {"index": 0, "proto": "tcp", "dst": "192.0.2.2", "port": 1, "timeout": 1}]',
            "repeats",
        ),
    ],
)
def test_decode_plan_rejects_bad_probes(probes: str, message: str) -> None:
    text = f'{{"version": 1, "run": "r", "probes": {probes}}}'
    with pytest.raises(ValueError, match=message):
        vp.decode_plan(text)


def test_plans_round_trip_and_are_capped() -> None:
    probes = [ProbeSpec(i, "udp", f"192.0.2.{i}", 53, 2.0) for i in range(5)]
    assert vp.decode_plan(vp.encode_plan("r", "ns", probes)) == ("r", probes)
    too_many = [ProbeSpec(i, "tcp", "192.0.2.1", 1 + i, 1.0) for i in range(vp.MAX_PROBES + 1)]
    with pytest.raises(ValueError, match="at most"):
        vp.encode_plan("r", "ns", too_many)
