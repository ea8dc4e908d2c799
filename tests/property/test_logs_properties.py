"""Laws of the log parser and the log-prefix contract.

- Whatever the input, ``LogParser.parse`` returns an Event, an Issue or None: nothing escapes.
- A line rendered the way the kernel prints it (``nf_log_syslog.c`` format strings) parses back
  to the values it was rendered from, in every wrapper, and the fast path agrees with the
  general path on it.
- An event never carries an address that is not one, or a port out of range, however a real
  line is mangled (truncated addresses, glued records, random edits).
- The fast path (``parse``, ``parse_lines``) decides every line as the general path alone
  decides it, also lines of the reference shape edited with whitespace, foreign digits and
  separators its expression lets into a field.
- ``logprefix.decode(encode(t, **values), t) == values`` for decodable templates.
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from egressguard import logprefix
from egressguard.errors import InputError
from egressguard.logs.events import Event, Issue
from egressguard.logs.parse import LogParser

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "log-samples-real.txt"
KMSG = Path(__file__).resolve().parents[1] / "conformance" / "data" / "log_kmsg_real.txt"
SEEDS = [
    line
    for path in (REAL, KMSG)
    if path.exists()
    for line in path.read_text(encoding="utf-8").splitlines()
]


def check(result: Event | Issue | None) -> None:
    """The invariants every result keeps."""
    if isinstance(result, Issue):
        assert result.issue
        return
    if result is None:
        return
    assert isinstance(result, Event)
    for address in (result.src, result.dst):
        if address is not None:
            ipaddress.ip_address(address)  # raises if it is not an address
    for port in (result.src_port, result.dst_port, result.window, result.urgp, result.ip_id):
        assert port is None or 0 <= port <= 65535
    assert result.ttl is None or 0 <= result.ttl <= 255
    if result.family == 6:
        assert result.src is not None
        assert ipaddress.ip_address(result.src).version == 6
        assert ipaddress.ip_address(result.src).compressed == result.src


@given(st.text(max_size=400))
@settings(max_examples=400)
def test_arbitrary_text_never_raises(text: str) -> None:
    check(LogParser().parse(text, 1))


@given(st.text(alphabet='IN=OUTSRCDSTPROTOLEN0123456789.:[] -xaf{}"', max_size=300))
@settings(max_examples=400)
def test_near_grammar_text_never_raises(text: str) -> None:
    check(LogParser().parse(text, 1))


@st.composite
def mangled(draw: st.DrawFn) -> str:
    line = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["delete", "insert", "replace", "cut", "glue", "dup"]))
        i = draw(st.integers(0, len(line)))
        if kind == "delete" and line:
            j = draw(st.integers(i, min(len(line), i + 8)))
            line = line[:i] + line[j:]
        elif kind == "insert":
            line = (
                line[:i] + draw(st.text(alphabet='0123456789.:= []{}<>xX"', max_size=4)) + line[i:]
            )
        elif kind == "replace" and i < len(line):
            line = line[:i] + draw(st.sampled_from("0123456789.: =]x")) + line[i + 1 :]
        elif kind == "cut":
            line = line[:i]
        elif kind == "glue":
            line = line + " " + draw(st.sampled_from(SEEDS))
        elif kind == "dup":
            line = line[:i] + line[i : i + 20] + line[i:]
    return line


@given(mangled())
@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
def test_mangled_real_lines_keep_the_invariants(line: str) -> None:
    check(LogParser().parse(line, 1))


def test_glued_real_lines_are_never_one_event() -> None:
    events = [line for line in SEEDS if isinstance(LogParser().parse(line, 1), Event)]
    assert len(events) > 30
    for a in events[:12]:
        for b in events[:12]:
            for glue in (" ", ""):
                result = LogParser().parse(a + glue + b, 1)
                assert isinstance(result, Issue), (a, b)


REFERENCE = [
    "2025-01-19T16:13:46.406155+00:00 node-1 kernel: [ 6236.551431] calico-packet: "
    "IN=azv7c40892f581 OUT=eth0 MAC=ee:ee:ee:ee:ee:ee:f2:f8:09:3d:97:03:08:00 " + payload
    for payload in (
        "SRC=10.244.0.179 DST=203.0.113.9 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=27413 DF PROTO=TCP "
        "SPT=53940 DPT=443 WINDOW=64240 RES=0x00 SYN URGP=0 ",
        "SRC=10.244.0.179 DST=198.51.100.7 LEN=76 TOS=0x10 PREC=0x20 TTL=64 ID=1 PROTO=UDP "
        "SPT=40000 DPT=53 LEN=56 ",
        "SRC=10.244.0.179 DST=192.0.2.1 LEN=84 TOS=0x00 PREC=0x00 TTL=63 ID=5 DF PROTO=ICMP "
        "TYPE=8 CODE=0 ID=77 SEQ=3 MARK=0x1f",
    )
]
#: What the fast expression's field runs ([^ ], [^=], [0-9]) may let through or stop at.
ODD = "\t\n\r\x0b\x0c\x1c\x85\xa0\u2028\u3000\u0663\u00b2=: 0x9FfA[]-."


@st.composite
def edited_reference(draw: st.DrawFn) -> tuple[str, str]:
    original = draw(st.sampled_from(REFERENCE))
    line = original
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(line)))
        kind = draw(st.sampled_from(["insert", "replace", "delete"]))
        odd = draw(st.text(alphabet=ODD, min_size=1, max_size=3))
        if kind == "insert":
            line = line[:i] + odd + line[i:]
        elif kind == "replace":
            line = line[:i] + odd + line[i + len(odd) :]
        else:
            line = line[:i] + line[i + draw(st.integers(1, 4)) :]
    return original, line


@given(edited_reference(), st.sampled_from([None, "calico-packet", "calico-packet %k:%n"]))
@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
def test_fast_path_decides_edited_reference_lines_as_the_general_path(
    edit: tuple[str, str], prefix: str | None
) -> None:
    original, line = edit
    want = LogParser(prefix=prefix)._slow(line, 2, fast=False)
    assert LogParser(prefix=prefix).parse(line, 2) == want
    first = LogParser(prefix=prefix)._slow(original, 1, fast=False)
    warm = LogParser(prefix=prefix)  # its caches hold the original line's texts
    assert list(warm.parse_lines([original, line])) == [r for r in (first, want) if r is not None]
    assert warm.parse(line, 2) == want


# -- rendering lines the way the kernel does -----------------------------------------------------

NAME = st.from_regex(r"[a-z][a-z0-9]{0,10}", fullmatch=True)


@st.composite
def packets(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A netfilter payload and the Event fields it must parse to."""
    f: dict[str, Any] = {}
    f["in_iface"] = draw(st.one_of(st.none(), NAME))
    f["out_iface"] = draw(st.one_of(st.none(), NAME))
    parts = [f"IN={f['in_iface'] or ''}", f"OUT={f['out_iface'] or ''}"]
    if f["in_iface"] is not None:
        mac = ":".join(
            f"{b:02x}" for b in draw(st.lists(st.integers(0, 255), min_size=12, max_size=12))
        )
        ethertype = draw(st.sampled_from([0x0800, 0x86DD]))
        f["mac"] = f"{mac}:{ethertype >> 8:02x}:{ethertype & 0xFF:02x}"
        f["mac_dst"], f["mac_src"], f["ethertype"] = mac[:17], mac[18:], ethertype
        parts.append(f"MAC={f['mac']}")
    family = draw(st.sampled_from([4, 6]))
    f["family"] = family
    if family == 4:
        src = ipaddress.IPv4Address(draw(st.integers(0, 2**32 - 1)))
        dst = ipaddress.IPv4Address(draw(st.integers(0, 2**32 - 1)))
        f["src"], f["dst"] = str(src), str(dst)
        f["length"] = draw(st.integers(20, 65535))
        f["tos"] = draw(st.integers(0, 255)) & 0x1E
        f["prec"] = draw(st.integers(0, 255)) & 0xE0
        f["ttl"] = draw(st.integers(0, 255))
        f["ip_id"] = draw(st.integers(0, 65535))
        flags = tuple(x for x in ("CE", "DF", "MF") if draw(st.booleans()))
        f["ip_flags"] = flags
        if "MF" in flags:
            f["fragment"] = 0
        parts += [
            f"SRC={src}",
            f"DST={dst}",
            f"LEN={f['length']}",
            f"TOS=0x{f['tos']:02X}",
            f"PREC=0x{f['prec']:02X}",
            f"TTL={f['ttl']}",
            f"ID={f['ip_id']}",
            *flags,
        ]
        protos = ["TCP", "UDP", "ICMP"]
    else:
        src6 = ipaddress.IPv6Address(draw(st.integers(0, 2**128 - 1)))
        dst6 = ipaddress.IPv6Address(draw(st.integers(0, 2**128 - 1)))
        f["src"], f["dst"] = src6.compressed, dst6.compressed
        f["length"] = draw(st.integers(40, 65575))
        f["tc"] = draw(st.integers(0, 255))
        f["hoplimit"] = draw(st.integers(0, 255))
        f["flowlabel"] = draw(st.integers(0, 0xFFFFF))
        parts += [
            f"SRC={src6.exploded}",  # %pI6: eight groups of four digits
            f"DST={dst6.exploded}",
            f"LEN={f['length']}",
            f"TC={f['tc']}",
            f"HOPLIMIT={f['hoplimit']}",
            f"FLOWLBL={f['flowlabel']}",
        ]
        protos = ["TCP", "UDP", "ICMPv6"]
    proto = draw(st.sampled_from(protos))
    port = st.integers(0, 65535)
    if proto == "TCP":
        f.update(proto="TCP", proto_num=6, src_port=draw(port), dst_port=draw(port))
        f.update(window=draw(port), tcp_res=draw(st.integers(0, 15)) * 4, urgp=draw(port))
        tflags = tuple(
            x
            for x in ("AE", "CWR", "ECE", "URG", "ACK", "PSH", "RST", "SYN", "FIN")
            if draw(st.booleans())
        )
        f["tcp_flags"] = tflags
        parts += [f"PROTO=TCP SPT={f['src_port']} DPT={f['dst_port']}"]
        if draw(st.booleans()):
            f["tcp_seq"], f["tcp_ack"] = (
                draw(st.integers(0, 2**32 - 1)),
                draw(st.integers(0, 2**32 - 1)),
            )
            parts.append(f"SEQ={f['tcp_seq']} ACK={f['tcp_ack']}")
        parts += [
            f"WINDOW={f['window']}",
            f"RES=0x{f['tcp_res']:02x}",
            *tflags,
            f"URGP={f['urgp']}",
        ]
    elif proto == "UDP":
        f.update(
            proto="UDP", proto_num=17, src_port=draw(port), dst_port=draw(port), udp_len=draw(port)
        )
        parts.append(f"PROTO=UDP SPT={f['src_port']} DPT={f['dst_port']} LEN={f['udp_len']}")
    else:
        echo = 8 if family == 4 else 128
        f.update(icmp_type=draw(st.sampled_from([echo, echo - (8 if family == 4 else -1)])))
        f.update(icmp_code=draw(st.integers(0, 255)), icmp_id=draw(port), icmp_seq=draw(port))
        f.update(proto="ICMP" if family == 4 else "ICMPV6", proto_num=1 if family == 4 else 58)
        parts.append(
            f"PROTO={proto} TYPE={f['icmp_type']} CODE={f['icmp_code']} "
            f"ID={f['icmp_id']} SEQ={f['icmp_seq']}"
        )
    if draw(st.booleans()):
        f["mark"] = draw(st.integers(1, 2**32 - 1))
        parts.append(f"MARK=0x{f['mark']:x}")
    return " ".join(parts) + draw(st.sampled_from([" ", ""])), f


WRAPPERS = {
    "iso8601": lambda m: f"2025-01-19T16:13:46.406155+00:00 node-1 kernel: [ 6236.551431] {m}",
    "rfc3164": lambda m: f"Jan 19 16:13:46 node-1 kernel: {m}",
    "rfc5424": lambda m: f"<4>1 2025-01-19T16:13:46Z node-1 kernel - - - {m}",
    "journald": lambda m: json.dumps({"_TRANSPORT": "kernel", "MESSAGE": m}),
    "kmsg": lambda m: f"4,77,6236551431,-;{m}",
    "dmesg": lambda m: f"[ 6236.551431] {m}",
    "bare": lambda m: m,
}


@given(
    packets(), st.sampled_from(sorted(WRAPPERS)), st.sampled_from(["calico-packet: ", "X: ", ""])
)
@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
def test_kernel_rendered_lines_parse_to_their_values(
    packet: tuple[str, dict[str, Any]], wrapper: str, prefix: str
) -> None:
    payload, fields = packet
    line = WRAPPERS[wrapper](prefix + payload)
    parser = LogParser()
    event = parser.parse(line, 1)
    assert isinstance(event, Event), (line, event)
    assert event.wrapper == wrapper
    assert event.prefix == prefix.rstrip(": ")
    expected = Event(**fields)
    for name in fields:
        assert getattr(event, name) == getattr(expected, name), name
    assert event == LogParser()._slow(line, 1)  # the fast path and the general path agree


@given(packets(), st.integers(1, 6))
@settings(max_examples=200)
def test_a_truncated_address_is_never_an_event(
    packet: tuple[str, dict[str, Any]], cut: int
) -> None:
    payload, _ = packet
    printed = payload.split("SRC=", 1)[1].split(" ", 1)[0]
    truncated = printed[:-cut]
    assume(truncated)
    try:
        ipaddress.ip_address(truncated)
        assume(False)  # still an address (e.g. 10.0.0.12 cut to 10.0.0.1): not truncation
    except ValueError:
        pass
    result = LogParser().parse(
        "calico-packet: " + payload.replace(f"SRC={printed}", f"SRC={truncated}"), 1
    )
    assert isinstance(result, Issue)
    assert result.code == "bad-address"


# -- the log-prefix contract ---------------------------------------------------------------------

K8S_NAME = st.from_regex(r"[a-z0-9]([a-z0-9.-]{0,20}[a-z0-9])?", fullmatch=True)
NAMESPACE = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)
LITERAL = st.text(alphabet="abcxyzABC0129: /_-", max_size=6)
SEPARATOR = st.text(alphabet="abc019-", max_size=3).flatmap(
    lambda s: st.sampled_from(": /_").map(lambda sep: s + sep)
)


@st.composite
def templates(draw: st.DrawFn) -> str:
    specs = draw(st.lists(st.sampled_from(["%t", "%k", "%n", "%p"]), min_size=0, max_size=4))
    out = draw(LITERAL)
    for i, spec in enumerate(specs):
        if i:
            out += draw(SEPARATOR)
        out += spec
    out += draw(LITERAL)
    return out


@given(
    templates(),
    K8S_NAME,
    st.sampled_from(sorted(logprefix.KIND_SHORT_NAMES.values())),
    K8S_NAME,
    st.one_of(st.none(), NAMESPACE),
)
@settings(max_examples=500)
def test_decode_inverts_encode(
    template: str, tier: str, kind: str, name: str, namespace: str | None
) -> None:
    assume(logprefix.is_decodable(template))
    assume(
        "%" not in template.replace("%t", "").replace("%k", "").replace("%n", "").replace("%p", "")
    )
    assume(len(template) + 60 < logprefix.MAX_LENGTH)
    used = {spec for spec in ("%t", "%k", "%n", "%p") if spec in template}
    try:
        text = logprefix.encode(template, tier=tier, kind=kind, name=name, namespace=namespace)
    except InputError:
        assume(False)  # a template repeating %p/%t can exceed the kernel's length: not encodable
    expected = logprefix.PrefixInfo(
        tier=tier if "%t" in used else None,
        kind=kind if "%k" in used else None,
        name=name if used & {"%n", "%p"} else None,
        namespace=namespace if "%p" in used else None,
    )
    assert logprefix.decode(text, template) == expected
    assert logprefix.decode(text, template, require_suffix=True) == expected
