"""Layer 2: the netfilter payload, ``<prefix>IN=... OUT=... ... `` as ``nf_log_syslog.c`` prints it.

This is the general (slow) path: a recursive-descent walk over the space-separated fields that
accepts exactly what the kernel can print, in the kernel's order, and rejects the rest with a
reason. The fast path (``parse.py``) handles the common Calico shapes and must agree with it.

Grammar (torvalds/linux ``net/netfilter/nf_log_syslog.c``; reference/netfilter-log-format.md §1):

    prefix IN=dev OUT=dev [PHYSIN=dev] [PHYSOUT=dev]
      [MAC=hex[:hex…] [TUNNEL=a->b] | MACSRC=m MACDST=m [VPROTO=hhhh VID=n] MACPROTO=hhhh]
      ( ARP ... | TRUNCATED | ipv4 | ipv6 | nothing (a non-IP frame) )
    ipv4:  SRC DST LEN TOS PREC TTL ID [CE] [DF] [MF] [FRAG:n] [OPT (HEX) | TRUNCATED]
           l4 [UID=n GID=n] [MARK=0xh]
    ipv6:  SRC DST LEN TC HOPLIMIT FLOWLBL ext-headers l4 [UID=n GID=n] [MARK=0xh]
    l4:    PROTO=TCP [INCOMPLETE [n bytes] | SPT DPT [SEQ ACK] WINDOW RES flags URGP [OPT (HEX)]]
         | PROTO=UDP|UDPLITE [INCOMPLETE [n bytes] | SPT DPT LEN]
         | PROTO=ICMP [INCOMPLETE … | TYPE CODE [INCOMPLETE … | ID SEQ | PARAMETER=n
                      | [GATEWAY=ip] [ inner ] [MTU=n]]]
         | PROTO=ICMPv6 [INCOMPLETE … | TYPE CODE [ID SEQ | [POINTER=hex] [ inner ] [MTU=n]]]
         | PROTO=AH [INCOMPLETE … | SPI=0xh] | PROTO=ESP [INCOMPLETE … | SPI=0xh] | PROTO=n

A transport header is absent on non-first fragments; an IPv4 AH fragment prints no PROTO at all.
The ICMP error quotes the offending header in ``[ ]`` one level deep, without UID/MARK.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache
from typing import Any

from egressguard.logs.wrapper import Rejected

__all__ = [
    "EBPF_RE",
    "MAX_MESSAGE",
    "OCTET",
    "PROTO_NAMES",
    "TCP_FLAGS",
    "V4_RE",
    "find_payload",
    "parse_fields",
]

#: Upper-case names for protocol numbers the kernel prints as ``PROTO=<n>`` (IANA "Assigned
#: Internet Protocol Numbers" keywords, upper-cased; 4 and 41 by their common names).
PROTO_NAMES: dict[int, str] = {
    1: "ICMP",
    2: "IGMP",
    4: "IPIP",
    6: "TCP",
    17: "UDP",
    41: "IPV6",
    46: "RSVP",
    47: "GRE",
    50: "ESP",
    51: "AH",
    58: "ICMPV6",
    59: "IPV6-NONXT",
    88: "EIGRP",
    89: "OSPF",
    94: "IPIP",
    103: "PIM",
    112: "VRRP",
    115: "L2TP",
    132: "SCTP",
    136: "UDPLITE",
    137: "MPLS-IN-IP",
    143: "ETHERNET",
}
#: Protocols the kernel prints by name, never as a number.
_NAMED = {"TCP": 6, "UDP": 17, "UDPLITE": 136, "ICMP": 1, "ICMPv6": 58, "AH": 51, "ESP": 50}

U8, U16, U20, U32 = 0xFF, 0xFFFF, 0xFFFFF, 0xFFFFFFFF

_IN_OUT_RE = re.compile(r"IN=(\S*) OUT=(\S*)(?: |\Z)")
# Digits are [0-9]: in a str pattern \d is any Unicode decimal digit ("1\u0663" is 13 to int()).
_DEC_RE = re.compile(r"(?:0|[1-9][0-9]*)\Z")
#: 0-255 in decimal as the kernel prints it (%u: no leading zeros); the fast path's u8 checks
#: use it too.
OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
V4_RE = re.compile(rf"{OCTET}(?:\.{OCTET}){{3}}\Z")
_MAC_RE = re.compile(r"[0-9a-f]{2}(?::[0-9a-f]{2})*\Z")
_HEX_UPPER_RE = re.compile(r"(?:[0-9A-F]{2})+\Z")
# What a second record glued into this one looks like: a syslog or kernel timestamp, a tag.
_GLUE_RE = re.compile(
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d"
    r"|(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) +\d{1,2} \d\d:\d\d:\d\d"
    r"|\[ *\d+\.\d+\]"
    r"|(?:^|\s)kernel: "
    r"|\{\s*\"|<\d{1,3}>"
)
EBPF_RE = re.compile(r": policy (?:DENIED|ALLOWED) ")
TCP_FLAGS = ("AE", "CWR", "ECE", "URG", "ACK", "PSH", "RST", "SYN", "FIN")
_IP_FLAGS = ("CE", "DF", "MF")
#: ICMP types whose header is followed by the quoted packet (dest-unreach, source-quench,
#: redirect, time-exceeded), and ICMPv6 error types (unreach, too-big, time-exceeded, param).
_ICMP_QUOTES = frozenset({3, 4, 5, 11})
_ICMP6_QUOTES = frozenset({1, 2, 3, 4})
#: Longest message the kernel's nf_log buffer holds (S_SIZE in nf_log.c).
MAX_MESSAGE = 1024
MAX_PREFIX = 127


def find_payload(message: str) -> tuple[str, int]:
    """``(prefix, start of IN=)``; raise ``Rejected`` when there is no netfilter payload or the
    prefix shows a second record glued in front."""
    m = _IN_OUT_RE.search(message)
    if m is None:
        if EBPF_RE.search(message):
            raise Rejected(
                "no-payload",
                "Calico eBPF trace-pipe line (policy verdict), not a netfilter LOG line: "
                "the eBPF dataplane does not write the kernel log",
            )
        raise Rejected("no-payload", "no 'IN=... OUT=...' netfilter payload")
    # IN= must start a field: at the start, after a space, or glued to a prefix that does not
    # end in an '=' value (the kernel pastes the prefix verbatim, e.g. "Unknown OutputIN=").
    prefix = message[: m.start()]
    if len(prefix) > MAX_PREFIX:
        raise Rejected(
            "grammar",
            f"prefix is {len(prefix)} characters; the kernel keeps at most {MAX_PREFIX}",
        )
    glue = _GLUE_RE.search(prefix)
    if glue is not None:
        raise Rejected(
            "glued",
            f"a second record starts inside this one ({glue.group().strip()!r} before IN=)",
        )
    return prefix, m.start()


def _dec(text: str, field: str, maximum: int) -> int:
    if not _DEC_RE.match(text):
        raise Rejected("bad-field", f"{field} {text!r} is not a decimal number")
    value = int(text)
    if value > maximum:
        raise Rejected("bad-field", f"{field} {value} is out of range (max {maximum})")
    return value


def _hexnum(text: str, field: str, *, maximum: int, upper: bool, width: int | None) -> int:
    digits = text[2:] if text.startswith("0x") else None
    if digits is None or not digits or (width is not None and len(digits) != width):
        raise Rejected("bad-field", f"{field} {text!r} is not 0x-prefixed hex as the kernel prints")
    allowed = "0123456789ABCDEF" if upper else "0123456789abcdef"
    if any(c not in allowed for c in digits):
        raise Rejected("bad-field", f"{field} {text!r} is not 0x-prefixed hex as the kernel prints")
    value = int(digits, 16)
    if value > maximum:
        raise Rejected("bad-field", f"{field} {text!r} is out of range")
    return value


def _hex4(text: str, field: str) -> int:
    """``%04x`` without a 0x prefix: VPROTO and MACPROTO."""
    if len(text) != 4 or any(c not in "0123456789abcdef" for c in text):
        raise Rejected("bad-field", f"{field} {text!r} is not 4 lower-case hex digits")
    return int(text, 16)


def _plainhex(text: str, field: str, *, maximum: int, width: int | None = None) -> int:
    """Minimal lowercase hex with 0x (``%x``): MARK and SPI."""
    value = _hexnum(text, field, maximum=maximum, upper=False, width=width)
    if width is None and len(text) > 3 and text[2] == "0":
        raise Rejected("bad-field", f"{field} {text!r} has leading zeros the kernel never prints")
    return value


def ipv4(text: str, field: str) -> str:
    if not V4_RE.match(text):
        raise Rejected("bad-address", f"{field} {text!r} is not an IPv4 address")
    return text


@lru_cache(maxsize=65536)
def _v6(text: str) -> str | None:
    if "%" in text or "." in text:
        return None
    try:
        return ipaddress.IPv6Address(text).compressed
    except ValueError:
        return None


def ipv6(text: str, field: str) -> str:
    value = _v6(text)
    if value is None:
        raise Rejected("bad-address", f"{field} {text!r} is not an IPv6 address")
    return value


def _iface(text: str, field: str) -> str | None:
    if len(text) > 15 or "/" in text or ":" in text:
        raise Rejected("bad-field", f"{field} {text!r} is not a Linux interface name")
    return text or None


def _mac(text: str, field: str) -> str:
    if len(text) != 17 or not _MAC_RE.match(text):
        raise Rejected("bad-field", f"{field} {text!r} is not a MAC address")
    return text


class _Cursor:
    """The fields of one payload and a position in them."""

    __slots__ = ("i", "tokens")

    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.i = 0

    def peek(self) -> str | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def at_end(self) -> bool:
        return self.i >= len(self.tokens)

    def take(self) -> str:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def has(self, key: str) -> bool:
        tok = self.peek()
        return tok is not None and tok.startswith(key) and tok[len(key) : len(key) + 1] == "="

    def word(self, word: str) -> bool:
        if self.peek() == word:
            self.i += 1
            return True
        return False

    def value(self, key: str, after: str) -> str:
        tok = self.peek()
        if tok is None:
            raise Rejected("grammar", f"line ends after {after}; expected {key}=")
        if not (tok.startswith(key) and tok[len(key) : len(key) + 1] == "="):
            raise Rejected("grammar", f"expected {key}= after {after}, found {tok!r}")
        self.i += 1
        return tok[len(key) + 1 :]

    def optional(self, key: str) -> str | None:
        if self.has(key):
            return self.take()[len(key) + 1 :]
        return None


def _tokens(payload: str) -> list[str]:
    """Split on single spaces; peel the brackets of a quoted header off their neighbours.

    A ']' closes a header only while one is open: outside, it belongs to the value it ends
    (Linux allows it in an interface name: ``OUT=eth]``)."""
    text = payload.rstrip("\r\n")
    if text.endswith(" "):
        text = text[:-1]
    raw = text.split(" ")
    out: list[str] = []
    depth = 0
    for field in raw:
        tok = field
        if not tok:
            raise Rejected("grammar", "two spaces in a row: the kernel separates fields by one")
        if tok[0] == "[" and (len(tok) == 1 or not "0" <= tok[1] <= "9"):
            depth += 1
            if len(tok) > 1:
                out.append("[")
                tok = tok[1:]
        if tok[-1] == "]" and depth and tok != "bytes]":
            depth -= 1
            if len(tok) > 1:
                out.append(tok[:-1])
                tok = "]"
        out.append(tok)
    return out


def _incomplete(c: _Cursor, f: dict[str, Any]) -> bool:
    """``INCOMPLETE [n bytes]``; True when it was there."""
    if c.peek() != "INCOMPLETE":
        return False
    c.take()
    n = c.peek()
    if n is None or not n.startswith("["):
        raise Rejected("grammar", "INCOMPLETE is not followed by '[N bytes]'")
    c.take()
    if c.peek() != "bytes]":
        raise Rejected("grammar", "INCOMPLETE is not followed by '[N bytes]'")
    c.take()
    f["incomplete"] = _dec(n[1:], "INCOMPLETE", U32)
    return True


def _opt_hex(c: _Cursor, field: str) -> str | None:
    """``OPT (HEX)`` → the hex; ``OPT (TRUNCATED)`` → ``"TRUNCATED"``."""
    if c.peek() != "OPT":
        return None
    c.take()
    tok = c.peek()
    if tok is None or not (tok.startswith("(") and tok.endswith(")")) or len(tok) < 3:
        raise Rejected("grammar", f"{field} OPT is not followed by '(HEX)'")
    c.take()
    body = tok[1:-1]
    if body != "TRUNCATED" and not _HEX_UPPER_RE.match(body):
        raise Rejected("bad-field", f"{field} options {body!r} are not upper-case hex bytes")
    return body


def _tcp(c: _Cursor, f: dict[str, Any], fragment: bool) -> bool:
    f["proto"], f["proto_num"] = "TCP", 6
    if fragment:
        return True
    if _incomplete(c, f):
        return False
    f["src_port"] = _dec(c.value("SPT", "PROTO=TCP"), "SPT", U16)
    f["dst_port"] = _dec(c.value("DPT", "SPT"), "DPT", U16)
    if c.has("SEQ"):
        f["tcp_seq"] = _dec(c.value("SEQ", "DPT"), "SEQ", U32)
        f["tcp_ack"] = _dec(c.value("ACK", "SEQ"), "ACK", U32)
    f["window"] = _dec(c.value("WINDOW", "DPT"), "WINDOW", U16)
    res = _hexnum(c.value("RES", "WINDOW"), "RES", maximum=0x3C, upper=False, width=2)
    if res & ~0x3C:
        raise Rejected("bad-field", f"RES 0x{res:02x} has bits the kernel masks out")
    f["tcp_res"] = res
    flags: list[str] = []
    for flag in TCP_FLAGS:
        if c.word(flag):
            flags.append(flag)
    f["tcp_flags"] = tuple(flags)
    f["urgp"] = _dec(c.value("URGP", "the TCP flags"), "URGP", U16)
    opt = _opt_hex(c, "TCP")
    if opt is not None:
        f["tcp_options"] = opt
        if opt == "TRUNCATED":
            return False
    return True


def _udp(c: _Cursor, f: dict[str, Any], name: str, fragment: bool) -> bool:
    f["proto"], f["proto_num"] = name, _NAMED[name]
    if fragment:
        return True
    if _incomplete(c, f):
        return False
    f["src_port"] = _dec(c.value("SPT", f"PROTO={name}"), "SPT", U16)
    f["dst_port"] = _dec(c.value("DPT", "SPT"), "DPT", U16)
    f["udp_len"] = _dec(c.value("LEN", "DPT"), "UDP LEN", U16)
    return True


def _spi(c: _Cursor, f: dict[str, Any], name: str, fragment: bool) -> bool:
    f["proto"], f["proto_num"] = name, _NAMED[name]
    if fragment:
        if name == "AH":
            raise Rejected("grammar", "an AH fragment prints no PROTO=AH")
        return True
    if _incomplete(c, f):
        return True
    f["spi"] = _plainhex(c.value("SPI", f"PROTO={name}"), "SPI", maximum=U32)
    return True


def _quoted(c: _Cursor, f: dict[str, Any], family: int, outer: bool) -> None:
    """The ``[ inner header ]`` of an ICMP error."""
    if not outer or c.peek() != "[":
        return
    c.take()
    inner: dict[str, Any] = {}
    if c.word("TRUNCATED"):
        inner["truncated"] = True
    else:
        src = c.peek() or ""
        if not src.startswith("SRC="):
            raise Rejected("grammar", f"quoted header starts with {src!r}, expected SRC=")
        if family == 4:
            parse_ipv4(c, inner, outer=False)
        else:
            parse_ipv6(c, inner, outer=False)
    if not c.word("]"):
        tok = c.peek()
        found = repr(tok) if tok is not None else "the end of the line"
        raise Rejected("grammar", f"quoted header is not closed by ']' (found {found})")
    f["inner"] = inner


def _icmp(c: _Cursor, f: dict[str, Any], fragment: bool, outer: bool) -> bool:
    f["proto"], f["proto_num"] = "ICMP", 1
    if fragment:
        return True
    if _incomplete(c, f):
        return True
    t = f["icmp_type"] = _dec(c.value("TYPE", "PROTO=ICMP"), "ICMP TYPE", U8)
    code = f["icmp_code"] = _dec(c.value("CODE", "TYPE"), "ICMP CODE", U8)
    if _incomplete(c, f):
        return True
    if t in (0, 8):
        f["icmp_id"] = _dec(c.value("ID", "CODE"), "ICMP ID", U16)
        f["icmp_seq"] = _dec(c.value("SEQ", "ID"), "ICMP SEQ", U16)
    elif t == 12:
        f["icmp_parameter"] = _dec(c.value("PARAMETER", "CODE"), "PARAMETER", U8)
    elif t in _ICMP_QUOTES:
        if t == 5:
            f["icmp_gateway"] = ipv4(c.value("GATEWAY", "CODE"), "GATEWAY")
        _quoted(c, f, 4, outer)
        if t == 3 and code == 4:
            f["mtu"] = _dec(c.value("MTU", "the quoted header"), "MTU", U16)
    return True


def _icmp6(c: _Cursor, f: dict[str, Any], fragment: bool, outer: bool) -> bool:
    f["proto"], f["proto_num"] = "ICMPV6", 58
    if fragment:
        return True
    if _incomplete(c, f):
        return False
    t = f["icmp_type"] = _dec(c.value("TYPE", "PROTO=ICMPv6"), "ICMPv6 TYPE", U8)
    f["icmp_code"] = _dec(c.value("CODE", "TYPE"), "ICMPv6 CODE", U8)
    if t in (128, 129):
        f["icmp_id"] = _dec(c.value("ID", "CODE"), "ICMPv6 ID", U16)
        f["icmp_seq"] = _dec(c.value("SEQ", "ID"), "ICMPv6 SEQ", U16)
    elif t in _ICMP6_QUOTES:
        if t == 4:
            pointer = c.value("POINTER", "CODE")
            if len(pointer) != 8 or any(ch not in "0123456789abcdef" for ch in pointer):
                raise Rejected("bad-field", f"POINTER {pointer!r} is not 8 hex digits")
            f["icmp_parameter"] = int(pointer, 16)
        _quoted(c, f, 6, outer)
        if t == 2:
            f["mtu"] = _dec(c.value("MTU", "the quoted header"), "MTU", U32)
    return True


def _l4(c: _Cursor, f: dict[str, Any], family: int, fragment: bool, outer: bool) -> bool:
    """The transport part; False when the kernel stopped early (nothing may follow)."""
    proto = c.value("PROTO", "the IP header")
    if proto == "TCP":
        return _tcp(c, f, fragment)
    if proto in ("UDP", "UDPLITE"):
        return _udp(c, f, proto, fragment)
    if proto == "ICMP" and family == 4:
        return _icmp(c, f, fragment, outer)
    if proto == "ICMPv6" and family == 6:
        return _icmp6(c, f, fragment, outer)
    if proto in ("AH", "ESP") and family == 4:
        return _spi(c, f, proto, fragment)
    num = _dec(proto, "PROTO", U8) if "0" <= proto[:1] <= "9" else None
    if num is None:
        raise Rejected("grammar", f"PROTO={proto} is not a protocol the kernel names")
    printed_by_name = {6, 17, 136} | ({1, 50, 51} if family == 4 else {58})
    if num in printed_by_name:
        raise Rejected("grammar", f"PROTO={num}: the kernel prints this protocol by name")
    f["proto"], f["proto_num"] = PROTO_NAMES.get(num, str(num)), num
    return True


def _trailer(c: _Cursor, f: dict[str, Any]) -> None:
    if c.has("UID"):
        f["uid"] = _dec(c.value("UID", "the transport header"), "UID", U32)
        f["gid"] = _dec(c.value("GID", "UID"), "GID", U32)
    mark = c.optional("MARK")
    if mark is not None:
        f["mark"] = _plainhex(mark, "MARK", maximum=U32)


def parse_ipv4(c: _Cursor, f: dict[str, Any], *, outer: bool) -> None:
    f["family"] = 4
    f["src"] = ipv4(c.value("SRC", "the link layer"), "SRC")
    f["dst"] = ipv4(c.value("DST", "SRC"), "DST")
    f["length"] = _dec(c.value("LEN", "DST"), "LEN", U32)
    tos = _hexnum(c.value("TOS", "LEN"), "TOS", maximum=U8, upper=True, width=2)
    prec = _hexnum(c.value("PREC", "TOS"), "PREC", maximum=U8, upper=True, width=2)
    if tos & ~0x1E or prec & ~0xE0:
        raise Rejected("bad-field", "TOS/PREC carry bits the kernel masks out (0x1E / 0xE0)")
    f["tos"], f["prec"] = tos, prec
    f["ttl"] = _dec(c.value("TTL", "PREC"), "TTL", U8)
    f["ip_id"] = _dec(c.value("ID", "TTL"), "ID", U16)
    flags = [flag for flag in _IP_FLAGS if c.word(flag)]
    f["ip_flags"] = tuple(flags)
    offset = 0
    tok = c.peek()
    if tok is not None and tok.startswith("FRAG:"):
        c.take()
        offset = _dec(tok[5:], "FRAG", 0x1FFF)
        if offset == 0:
            raise Rejected("bad-field", "FRAG:0 is never printed (offset 0 is not a fragment)")
        f["fragment"] = offset * 8
    elif "MF" in flags:
        f["fragment"] = 0
    if c.word("TRUNCATED"):
        f["truncated"] = True
        return
    opt = _opt_hex(c, "IP")
    if opt is not None:
        if opt == "TRUNCATED":
            raise Rejected("grammar", "IP options are cut with 'TRUNCATED', not 'OPT (TRUNCATED)'")
        f["ip_options"] = opt
    if offset and not c.has("PROTO"):
        # An AH fragment prints nothing at all after the IP header.
        f["proto"], f["proto_num"] = "AH", 51
        complete = True
    else:
        complete = _l4(c, f, 4, offset != 0, outer)
    if outer and complete:
        _trailer(c, f)


def _frag(c: _Cursor, f: dict[str, Any], tok: str) -> bool:
    """``FRAG:n [INCOMPLETE] ID:%08x``; True for a non-first fragment."""
    value = _dec(tok[5:], "FRAG", 0xFFF8)
    if value & 7:
        raise Rejected("bad-field", f"IPv6 FRAG:{value} is not a multiple of 8")
    f["fragment"] = value
    if c.word("INCOMPLETE"):  # here: more fragments follow
        f["ip_flags"] = ("MF",)
    ident = c.take() if not c.at_end() else ""
    hexid = ident[3:]
    if not (
        ident.startswith("ID:")
        and len(hexid) == 8
        and all(ch in "0123456789abcdef" for ch in hexid)
    ):
        raise Rejected("bad-field", f"IPv6 fragment {ident!r} is not ID:%08x")
    f["frag_id"] = int(hexid, 16)
    return value != 0


def _ext_headers(c: _Cursor, f: dict[str, Any]) -> tuple[bool, bool]:
    """The IPv6 extension-header walk; ``(fragment, stopped)``. Stopped means the kernel
    returned from the dump and nothing, not even PROTO=, follows. With ``flags ip options``
    every header is printed as ``OPT ( ... )``; without, only the fragment header shows."""
    fragment = False
    raw: list[str] = []

    def done(stopped: bool) -> tuple[bool, bool]:
        if raw:
            f["ext_headers"] = " ".join(raw)
        return fragment, stopped

    while True:
        tok = c.peek()
        if tok == "TRUNCATED":
            c.take()
            f["truncated"] = True
            return done(True)
        if tok == "Unknown":
            c.take()
            if not (c.word("Ext") and c.word("Hdr")):
                raise Rejected("grammar", "expected 'Unknown Ext Hdr N'")
            n = _dec(c.take() if not c.at_end() else "", "Unknown Ext Hdr", U8)
            raw.append(f"Unknown Ext Hdr {n}")
            return done(True)
        if tok is not None and tok.startswith("FRAG:"):
            c.take()
            if tok == "FRAG:TRUNCATED":
                f["truncated"] = True
                return done(True)
            fragment = _frag(c, f, tok) or fragment
            continue
        if tok != "OPT":
            return done(False)
        c.take()
        if not c.word("("):
            raise Rejected("grammar", "IPv6 OPT is not followed by '( '")
        start = c.i
        tok = c.peek()
        stop = False
        if tok is not None and tok.startswith("FRAG:"):
            c.take()
            if tok == "FRAG:TRUNCATED":
                f["truncated"] = True
                raw.append("OPT ( FRAG:TRUNCATED")
                return done(True)
            fragment = _frag(c, f, tok) or fragment
        elif tok in ("AH", "ESP"):
            c.take()
            stop = tok == "ESP"  # the walk always ends at ESP
            if c.peek() == ")":
                stop = True  # on a fragment the kernel prints the name only and returns
            elif _incomplete(c, f):
                stop = True
            else:
                f["spi"] = _plainhex(c.value("SPI", tok), "SPI", maximum=U32)
        elif tok == ")":
            stop = fragment  # hop-by-hop/routing/destination options; end of walk on a fragment
        else:
            raise Rejected("grammar", f"unexpected {tok!r} in an IPv6 OPT ( ... ) group")
        if not c.word(")"):
            raise Rejected("grammar", "IPv6 OPT ( ... ) is not closed")
        content = " ".join(c.tokens[start : c.i - 1])
        raw.append(f"OPT ( {content} )" if content else "OPT ( )")
        if stop:
            return done(True)


def parse_ipv6(c: _Cursor, f: dict[str, Any], *, outer: bool) -> None:
    f["family"] = 6
    f["src"] = ipv6(c.value("SRC", "the link layer"), "SRC")
    f["dst"] = ipv6(c.value("DST", "SRC"), "DST")
    length = _dec(c.value("LEN", "DST"), "LEN", U16 + 40)
    if length < 40:
        raise Rejected("bad-field", f"IPv6 LEN {length} is shorter than the IPv6 header")
    f["length"] = length
    f["tc"] = _dec(c.value("TC", "LEN"), "TC", U8)
    f["hoplimit"] = _dec(c.value("HOPLIMIT", "TC"), "HOPLIMIT", U8)
    f["flowlabel"] = _dec(c.value("FLOWLBL", "HOPLIMIT"), "FLOWLBL", U20)
    fragment, stopped = _ext_headers(c, f)
    if stopped:
        return
    if c.at_end() or c.peek() == "]":
        # ESP or a fragment's later option header ends the walk silently (no IPOPT flag).
        return
    complete = _l4(c, f, 6, fragment, outer)
    if outer and complete:
        _trailer(c, f)


def _arp(c: _Cursor, f: dict[str, Any]) -> None:
    c.take()  # ARP
    f["proto"] = "ARP"
    f["arp_htype"] = _dec(c.value("HTYPE", "ARP"), "HTYPE", U16)
    f["arp_ptype"] = _hexnum(c.value("PTYPE", "HTYPE"), "PTYPE", maximum=U16, upper=False, width=4)
    f["arp_opcode"] = _dec(c.value("OPCODE", "PTYPE"), "OPCODE", U16)
    if c.at_end() or _incomplete(c, f):
        return
    f["arp_sha"] = _mac(c.value("MACSRC", "OPCODE"), "MACSRC")
    f["src"] = ipv4(c.value("IPSRC", "MACSRC"), "IPSRC")
    f["arp_tha"] = _mac(c.value("MACDST", "IPSRC"), "MACDST")
    f["dst"] = ipv4(c.value("IPDST", "MACDST"), "IPDST")


def _link(c: _Cursor, f: dict[str, Any]) -> None:
    mac = c.optional("MAC")
    if mac is not None:
        # The raw text is kept as printed; only a full Ethernet header (6+6+2 bytes) is split.
        # Anything else (empty on tun devices, 10 bytes, an elided 'aa:aa:...' in docs) stays raw.
        f["mac"] = mac or None
        if len(mac) == 41 and _MAC_RE.match(mac):
            f["mac_dst"], f["mac_src"] = mac[:17], mac[18:35]
            f["ethertype"] = int(mac[36:38] + mac[39:41], 16)
        tunnel = c.optional("TUNNEL")
        if tunnel is not None:
            a, sep, b = tunnel.partition("->")
            if not sep:
                raise Rejected("grammar", f"TUNNEL={tunnel} is not 'a.b.c.d->e.f.g.h'")
            f["tunnel_src"], f["tunnel_dst"] = ipv4(a, "TUNNEL"), ipv4(b, "TUNNEL")
        return
    macsrc = c.optional("MACSRC")
    if macsrc is None:
        return
    f["mac_src"] = _mac(macsrc, "MACSRC")
    f["mac_dst"] = _mac(c.value("MACDST", "MACSRC"), "MACDST")
    if c.has("VPROTO"):
        f["vlan_proto"] = _hex4(c.value("VPROTO", "MACDST"), "VPROTO")
        f["vlan_id"] = _dec(c.value("VID", "VPROTO"), "VID", 4095)
    f["ethertype"] = _hex4(c.value("MACPROTO", "MACDST"), "MACPROTO")


def parse_fields(payload: str) -> dict[str, Any]:
    """The fields of ``payload`` (which starts at ``IN=``) as a dict of ``Event`` field values;
    raise ``Rejected`` on anything the kernel would not have printed."""
    c = _Cursor(_tokens(payload))
    f: dict[str, Any] = {}
    f["in_iface"] = _iface(c.value("IN", "the prefix"), "IN")
    f["out_iface"] = _iface(c.value("OUT", "IN"), "OUT")
    physin = c.optional("PHYSIN")
    if physin is not None:
        f["physin"] = _iface(physin, "PHYSIN")
    physout = c.optional("PHYSOUT")
    if physout is not None:
        f["physout"] = _iface(physout, "PHYSOUT")
    _link(c, f)
    tok = c.peek()
    if tok is None:
        return f  # a non-IP frame: the kernel prints the link layer only
    if tok == "ARP":
        _arp(c, f)
    elif tok == "TRUNCATED":
        c.take()
        f["truncated"] = True
    elif c.has("SRC"):
        src = tok[4:]
        if ":" in src:
            parse_ipv6(c, f, outer=True)
        else:
            parse_ipv4(c, f, outer=True)
    else:
        raise Rejected("grammar", f"expected SRC=, ARP or TRUNCATED, found {tok!r}")
    if not c.at_end():
        rest = " ".join(c.tokens[c.i :])
        if _GLUE_RE.search(rest) or _IN_OUT_RE.search(rest):
            raise Rejected("glued", f"a second record starts inside this one at {rest[:40]!r}")
        raise Rejected("grammar", f"unexpected {c.tokens[c.i]!r} where the kernel's line ends")
    return f
