"""Layer 2: every shape nf_log_syslog.c can print, and what it cannot.

Lines are written from the kernel's format strings (torvalds/linux
net/netfilter/nf_log_syslog.c, quoted in reference/netfilter-log-format.md §1); addresses are
documentation ranges.
"""

from __future__ import annotations

import pytest

from egressguard.logs.events import Event, Issue, Packet
from egressguard.logs.parse import LogParser

MAC = "MAC=02:00:00:00:00:02:02:00:00:00:00:01:08:00"
V4 = "SRC=192.0.2.1 DST=198.51.100.7 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=4242"
V6 = (
    "SRC=2001:0db8:0000:0000:0000:0000:0000:0001 DST=2001:0db8:0000:0000:0000:0000:0000:0002 "
    "LEN=80 TC=0 HOPLIMIT=64 FLOWLBL=7"
)


def parse(message: str) -> Event | Issue | None:
    return LogParser().parse(message, 7)


def event(message: str) -> Event:
    result = parse(message)
    assert isinstance(result, Event), result
    return result


def issue(message: str) -> Issue:
    result = parse(message)
    assert isinstance(result, Issue), result
    assert result.line_no == 7
    return result


# -- accepted shapes ----------------------------------------------------------------------------


def test_tcp_with_sequence_options_uid_and_mark() -> None:
    e = event(
        f"p: IN= OUT=eth0 {V4} DF PROTO=TCP SPT=40000 DPT=443 SEQ=4294967295 ACK=0 "
        "WINDOW=64240 RES=0x00 SYN URGP=0 OPT (020405B4) UID=1000 GID=1000 MARK=0xffffffff "
    )
    assert (e.tcp_seq, e.tcp_ack, e.tcp_options) == (4294967295, 0, "020405B4")
    assert (e.uid, e.gid, e.mark) == (1000, 1000, 0xFFFFFFFF)
    assert e.in_iface is None
    assert e.mac is None


def test_all_tcp_flags_in_kernel_order_including_ae() -> None:
    e = event(
        f"p: IN= OUT=eth0 {V4} PROTO=TCP SPT=1 DPT=2 WINDOW=0 RES=0x3c "
        "AE CWR ECE URG ACK PSH RST SYN FIN URGP=65535 "
    )
    assert e.tcp_flags == ("AE", "CWR", "ECE", "URG", "ACK", "PSH", "RST", "SYN", "FIN")
    assert e.tcp_res == 0x3C


def test_ipv4_first_fragment_and_later_fragment() -> None:
    first = event(f"p: IN= OUT=eth0 {V4} MF PROTO=UDP SPT=5 DPT=53 LEN=1480 ")
    assert (first.fragment, first.ip_flags, first.src_port) == (0, ("MF",), 5)
    later = event(f"p: IN= OUT=eth0 {V4} MF FRAG:185 PROTO=UDP ")
    assert (later.fragment, later.ip_flags) == (1480, ("MF",))
    assert (later.proto, later.src_port, later.udp_len) == ("UDP", None, None)
    last = event(f"p: IN= OUT=eth0 {V4} FRAG:370 PROTO=TCP MARK=0x1 ")
    assert (last.fragment, last.ip_flags, last.mark) == (2960, (), 1)


def test_ipv4_ah_fragment_prints_no_proto_at_all() -> None:
    e = event(f"p: IN= OUT=eth0 {V4} FRAG:10 ")
    assert (e.proto, e.proto_num, e.fragment) == ("AH", 51, 80)


def test_ah_esp_and_numbered_protocols() -> None:
    assert event(f"p: IN= OUT=eth0 {V4} PROTO=AH SPI=0x100 ").spi == 256
    esp = event(f"p: IN= OUT=eth0 {V4} PROTO=ESP INCOMPLETE [4 bytes] ")
    assert (esp.proto, esp.incomplete, esp.spi) == ("ESP", 4, None)
    gre = event(f"p: IN= OUT=eth0 {V4} PROTO=47 ")
    assert (gre.proto, gre.proto_num) == ("GRE", 47)
    other = event(f"p: IN= OUT=eth0 {V4} PROTO=253 ")
    assert (other.proto, other.proto_num) == ("253", 253)


def test_icmp_redirect_quotes_the_header_after_the_gateway() -> None:
    e = event(
        f"p: IN=eth0 OUT= {MAC} {V4} PROTO=ICMP TYPE=5 CODE=1 GATEWAY=192.0.2.254 "
        "[SRC=198.51.100.7 DST=203.0.113.9 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=9 DF PROTO=TCP "
        "INCOMPLETE [8 bytes] ] "
    )
    assert e.icmp_gateway == "192.0.2.254"
    assert e.inner == Packet(
        family=4,
        src="198.51.100.7",
        dst="203.0.113.9",
        length=60,
        tos=0,
        prec=0,
        ttl=63,
        ip_id=9,
        ip_flags=("DF",),
        proto="TCP",
        proto_num=6,
        incomplete=8,
    )
    assert e.mtu is None


def test_icmp_types_without_a_quoted_header() -> None:
    assert (
        event(f"p: IN= OUT=eth0 {V4} PROTO=ICMP TYPE=12 CODE=0 PARAMETER=20 ").icmp_parameter == 20
    )
    stamp = event(f"p: IN= OUT=eth0 {V4} PROTO=ICMP TYPE=13 CODE=0 ")
    assert (stamp.icmp_type, stamp.icmp_id, stamp.inner) == (13, None, None)


def test_icmp_incomplete_keeps_the_trailer() -> None:
    short = event(f"p: IN= OUT=eth0 {V4} PROTO=ICMP TYPE=3 CODE=1 INCOMPLETE [20 bytes] MARK=0x5 ")
    assert (short.incomplete, short.mark, short.inner) == (20, 5, None)
    header = event(f"p: IN= OUT=eth0 {V4} PROTO=ICMP INCOMPLETE [2 bytes] ")
    assert (header.incomplete, header.icmp_type) == (2, None)


def test_quoted_header_that_could_not_be_read() -> None:
    e = event(f"p: IN= OUT=eth0 {V4} PROTO=ICMP TYPE=11 CODE=0 [TRUNCATED] ")
    assert e.inner == Packet(truncated=True)


def test_tcp_stops_early_and_nothing_may_follow() -> None:
    e = event(f"p: IN= OUT=eth0 {V4} PROTO=TCP INCOMPLETE [10 bytes] ")
    assert (e.incomplete, e.src_port) == (10, None)
    assert (
        issue(f"p: IN= OUT=eth0 {V4} PROTO=TCP INCOMPLETE [10 bytes] MARK=0x1 ").code == "grammar"
    )
    cut = event(
        f"p: IN= OUT=eth0 {V4} PROTO=TCP SPT=1 DPT=2 WINDOW=3 RES=0x00 ACK URGP=0 OPT (TRUNCATED)"
    )
    assert cut.tcp_options == "TRUNCATED"


def test_ip_header_and_ip_options_truncated() -> None:
    header = event(f"p: IN=eth0 OUT= {MAC} TRUNCATED")
    assert (header.truncated, header.family, header.src) == (True, None, None)
    options = event(f"p: IN= OUT=eth0 {V4} DF TRUNCATED")
    assert (options.truncated, options.src, options.proto) == (True, "192.0.2.1", None)
    ok = event(f"p: IN= OUT=eth0 {V4} OPT (07040400) PROTO=UDP SPT=1 DPT=2 LEN=8 ")
    assert ok.ip_options == "07040400"


def test_link_layer_variants() -> None:
    bridged = event(f"p: IN=br0 OUT=br0 PHYSIN=veth1 PHYSOUT=veth2 {MAC} {V4} PROTO=47 ")
    assert (bridged.physin, bridged.physout, bridged.ethertype) == ("veth1", "veth2", 0x0800)
    tun = event(f"p: IN=wg0 OUT= MAC= {V4} PROTO=47 ")
    assert (tun.in_iface, tun.mac, tun.mac_src) == ("wg0", None, None)
    vlan = event(
        "p: IN=eth0 OUT= MACSRC=02:00:00:00:00:01 MACDST=02:00:00:00:00:02 VPROTO=8100 VID=42 "
        f"MACPROTO=0800 {V4} PROTO=47 "
    )
    assert (vlan.mac_src, vlan.mac_dst, vlan.vlan_proto, vlan.vlan_id, vlan.ethertype) == (
        "02:00:00:00:00:01",
        "02:00:00:00:00:02",
        0x8100,
        42,
        0x0800,
    )


def test_arp_and_non_ip_frames() -> None:
    arp = event(
        "p: IN=eth0 OUT= ARP HTYPE=1 PTYPE=0x0800 OPCODE=1 MACSRC=02:00:00:00:00:01 "
        "IPSRC=192.0.2.1 MACDST=00:00:00:00:00:00 IPDST=192.0.2.2"
    )
    assert (arp.proto, arp.family, arp.src, arp.dst, arp.arp_opcode) == (
        "ARP",
        None,
        "192.0.2.1",
        "192.0.2.2",
        1,
    )
    assert (arp.arp_sha, arp.arp_tha, arp.arp_ptype) == (
        "02:00:00:00:00:01",
        "00:00:00:00:00:00",
        0x800,
    )
    frame = event(f"p: IN=eth0 OUT= {MAC}")
    assert (frame.family, frame.proto, frame.mac_src) == (None, None, "02:00:00:00:00:01")


def test_ipv6_fragment_header_without_ip_options_flag() -> None:
    e = event(f"p: IN= OUT=eth0 {V6} FRAG:1448 INCOMPLETE ID:0000abcd PROTO=UDP ")
    assert (e.fragment, e.ip_flags, e.frag_id, e.proto, e.src_port) == (
        1448,
        ("MF",),
        0xABCD,
        "UDP",
        None,
    )
    assert e.ext_headers is None
    first = event(
        f"p: IN= OUT=eth0 {V6} FRAG:0 INCOMPLETE ID:0000abcd PROTO=UDP SPT=1 DPT=2 LEN=9 "
    )
    assert (first.fragment, first.src_port) == (0, 1)


def test_ipv6_extension_headers_with_ip_options_flag() -> None:
    ah = event(
        f"p: IN= OUT=eth0 {V6} OPT ( ) OPT ( AH SPI=0x10 ) "
        "PROTO=TCP SPT=1 DPT=2 WINDOW=3 RES=0x00 SYN URGP=0 "
    )
    assert (ah.spi, ah.ext_headers, ah.src_port) == (16, "OPT ( ) OPT ( AH SPI=0x10 )", 1)
    esp = event(f"p: IN= OUT=eth0 {V6} OPT ( ESP SPI=0x20 )")
    assert (esp.spi, esp.proto) == (32, None)
    unknown = event(f"p: IN= OUT=eth0 {V6} Unknown Ext Hdr 139")
    assert (unknown.ext_headers, unknown.proto) == ("Unknown Ext Hdr 139", None)
    silent_esp = event(f"p: IN= OUT=eth0 {V6} ")  # ESP without the flag ends the walk silently
    assert (silent_esp.family, silent_esp.proto) == (6, None)


def test_icmpv6_errors_and_echo() -> None:
    too_big = event(
        f"p: IN=eth0 OUT= {MAC} {V6} PROTO=ICMPv6 TYPE=2 CODE=0 "
        f"[{V6} PROTO=TCP INCOMPLETE [8 bytes] ] "
        "MTU=1280 "
    )
    assert too_big.mtu == 1280
    assert too_big.inner is not None
    assert (too_big.inner.src, too_big.inner.incomplete) == ("2001:db8::1", 8)
    param = event(
        f"p: IN= OUT=eth0 {V6} PROTO=ICMPv6 TYPE=4 CODE=0 POINTER=00000028 [{V6} PROTO=59 ] "
    )
    assert param.icmp_parameter == 40
    assert param.inner is not None
    assert (param.inner.proto, param.inner.proto_num) == ("IPV6-NONXT", 59)
    echo = event(
        f"p: IN= OUT=eth0 {V6} PROTO=ICMPv6 TYPE=129 CODE=0 ID=1 SEQ=2 UID=0 GID=0 MARK=0x7 "
    )
    assert (echo.icmp_id, echo.icmp_seq, echo.uid, echo.mark) == (1, 2, 0, 7)
    assert event(f"p: IN= OUT=eth0 {V6} PROTO=ICMPv6 INCOMPLETE [2 bytes] ").incomplete == 2


def test_prefix_shapes() -> None:
    assert event(f"IN= OUT=eth0 {V4} PROTO=47 ").prefix == ""
    assert event(f"Unknown OutputIN= OUT=eth0 {V4} PROTO=47 ").prefix == "Unknown Output"
    assert event(f"[UFW BLOCK] IN= OUT=eth0 {V4} PROTO=47 ").prefix == "[UFW BLOCK]"
    assert event(f"calico-packet gnp:default/x: IN= OUT=eth0 {V4} PROTO=47").prefix == (
        "calico-packet gnp:default/x"
    )


# -- rejected -------------------------------------------------------------------------------------

TCP = "PROTO=TCP SPT=40000 DPT=443 WINDOW=64240 RES=0x00 SYN URGP=0 "


@pytest.mark.parametrize(
    ("message", "code", "reason"),
    [
        (
            f"p: IN= OUT=eth0 SRC=192.0.2.1 DST=198.51.100.7 LEN=60 TTL=64 TOS=0x00 {TCP}",
            "grammar",
            "expected TOS=",
        ),
        (f"p: IN= OUT=eth0 {V4} FOO=1 {TCP}", "grammar", "FOO=1"),
        (
            f"p: IN= OUT=eth0 {V4} PROTO=TCP SPT=1 DPT=2 WINDOW=3 RES=0x00 SYN ACK URGP=0 ",
            "grammar",
            "ACK",
        ),
        (f"p: IN= OUT=eth0 {V4.replace('TOS=0x00', 'TOS=0x01')} {TCP}", "bad-field", "TOS"),
        (f"p: IN= OUT=eth0 {V4.replace('TOS=0x00', 'TOS=0x0a')} {TCP}", "bad-field", "TOS"),
        (f"p: IN= OUT=eth0 {V4} {TCP.replace('SPT=40000', 'SPT=0443')}", "bad-field", "SPT"),
        (f"p: IN= OUT=eth0 {V4} {TCP.replace('DPT=443', 'DPT=65536')}", "bad-field", "DPT"),
        (f"p: IN= OUT=eth0 {V4} {TCP.replace('RES=0x00', 'RES=0x01')}", "bad-field", "RES"),
        (f"p: IN= OUT=eth0 {V4.replace('TTL=64', 'TTL=256')} {TCP}", "bad-field", "TTL"),
        (f"p: IN= OUT=eth0 {V4} {TCP}MARK=0x02a ", "bad-field", "MARK"),
        (f"p: IN= OUT=eth0 {V4.replace('192.0.2.1', '192.0.2')} {TCP}", "bad-address", "192.0.2"),
        (f"p: IN= OUT=eth0 {V4.replace('192.0.2.1', '192.0.2.256')} {TCP}", "bad-address", "SRC"),
        (
            f"p: IN= OUT=eth0 {V6.replace('0000:0000:0000:0002', '0000:0002')} {TCP}",
            "bad-address",
            "DST",
        ),
        (f"p: IN= OUT=eth0 {V4} PROTO=6 ", "grammar", "by name"),
        (f"p: IN= OUT=eth0 {V4} PROTO=ICMPv6 TYPE=128 CODE=0 ", "grammar", "ICMPv6"),
        (f"p: IN= OUT=eth0 {V4}  {TCP}", "grammar", "two spaces"),
        (f"p: IN=averyveryverylongname OUT=eth0 {V4} {TCP}", "bad-field", "interface"),
        (
            f"p: IN= OUT=eth0 {V4} {TCP}Jan 19 16:13:49 node kernel: p: IN= OUT=eth0",
            "glued",
            "second record",
        ),
        (
            f"p: IN= OUT=eth0 {V4} {TCP}p: IN= OUT=eth0 {V4}",
            "glued",
            "",
        ),
        (f"node kernel: [ 12.5] p: IN= OUT=eth0 {V4} {TCP}", "glued", "second record"),
        (
            f"p: IN= OUT=eth0 {V4} PROTO=ICMP TYPE=3 CODE=4 [{V4} PROTO=47 MTU=1500 ",
            "grammar",
            "not closed",
        ),
        ("SRC=192.0.2.1 DST=198.51.100.7 LEN=60", "no-payload", "IN="),
    ],
)
def test_rejected(message: str, code: str, reason: str) -> None:
    found = issue(message)
    assert found.code == code, found
    assert reason in found.issue


def test_rejected_lines_carry_their_prefix() -> None:
    assert issue(
        f"calico-packet: IN= OUT=eth0 {V4.replace('192.0.2.1', '192.0.2')} {TCP}"
    ).prefix == ("calico-packet")
