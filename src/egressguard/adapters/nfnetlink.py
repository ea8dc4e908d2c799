"""Set-element updates over nfnetlink, without the ``nft`` binary: the agent's fast path.

Why this exists: ``nft`` 1.0.6 (Debian 12) fetches *every* element of an interval set from
the kernel before it adds or deletes a single one (it checks overlaps in user space). With
200k ranges that fetch alone takes seconds, more than a full reload. The kernel itself needs
no such thing: it checks overlaps on insertion and applies a batch atomically. So element
updates are sent here as one nfnetlink batch, exactly as ``nft`` would encode them, and cost
what the change costs.

Encoding (from ``nft --debug=netlink`` on this machine and ``linux/netfilter/nf_tables.h``):

* one batch: ``NFNL_MSG_BATCH_BEGIN``, the messages, ``NFNL_MSG_BATCH_END``, in one datagram;
  the kernel commits all or nothing;
* an interval ``[first, last]`` of an interval set is two elements: key ``first`` (flags 0) and
  key ``last + 1`` with ``NFT_SET_ELEM_INTERVAL_END``; a range that ends at the family's last
  address has no end element (nft marks it "open" in the element's user data);
* ``NFT_MSG_DELSETELEM`` takes the same pair; deletions come first in the batch, and the
  kernel ignores elements deleted earlier in the same batch when it checks added intervals;
* the state marker is rewritten in the same batch: ``NFT_MSG_DELRULE`` with only table and
  chain flushes the chain, ``NFT_MSG_NEWRULE`` appends ``return`` with the comment in the
  rule's user data (``NFTNL_UDATA_RULE_COMMENT``), as ``nft`` stores ``comment "..."``.

Network namespaces: the socket is opened by a short-lived thread that first enters the
namespace with ``setns(2)``; a socket stays in the namespace it was created in.
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import struct
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from egressguard.errors import DataplaneError, EnvironmentProblem

__all__ = ["ElementBatch", "NfNetlink", "read_rule_comments"]

NETLINK_NETFILTER = 12
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_ROOT = 0x100
NLM_F_MATCH = 0x200
NLM_F_DUMP = NLM_F_ROOT | NLM_F_MATCH
NLM_F_CREATE = 0x400
NLM_F_APPEND = 0x800
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLA_F_NESTED = 0x8000

NFNL_SUBSYS_NFTABLES = 10
NFNL_MSG_BATCH_BEGIN = 0x10
NFNL_MSG_BATCH_END = 0x11
NFPROTO_INET = 1

NFT_MSG_NEWRULE = 6
NFT_MSG_GETRULE = 7
NFT_MSG_DELRULE = 8
NFT_MSG_NEWSETELEM = 12
NFT_MSG_DELSETELEM = 14

NFTA_RULE_TABLE = 1
NFTA_RULE_CHAIN = 2
NFTA_RULE_EXPRESSIONS = 4
NFTA_RULE_USERDATA = 7
NFTA_LIST_ELEM = 1
NFTA_EXPR_NAME = 1
NFTA_EXPR_DATA = 2
NFTA_IMMEDIATE_DREG = 1
NFTA_IMMEDIATE_DATA = 2
NFTA_DATA_VALUE = 1
NFTA_DATA_VERDICT = 2
NFTA_VERDICT_CODE = 1
NFT_REG_VERDICT = 0
NFT_RETURN = -5

NFTA_SET_ELEM_LIST_TABLE = 1
NFTA_SET_ELEM_LIST_SET = 2
NFTA_SET_ELEM_LIST_ELEMENTS = 3
NFTA_SET_ELEM_KEY = 1
NFTA_SET_ELEM_FLAGS = 3
NFTA_SET_ELEM_USERDATA = 6
NFT_SET_ELEM_INTERVAL_END = 1
NFTNL_UDATA_RULE_COMMENT = 0
NFTNL_UDATA_SET_ELEM_FLAGS = 1
NFTNL_SET_ELEM_F_INTERVAL_OPEN = 1

SO_SNDBUFFORCE = 32
SO_RCVBUFFORCE = 33
CLONE_NEWNET = 0x40000000

#: Keep each message's element list well below the 64 KiB limit of one netlink attribute.
_CHUNK_BYTES = 48 * 1024
_HEADER = struct.Struct("=IHHII")


def _attr(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def _nest(kind: int, *parts: bytes) -> bytes:
    return _attr(kind | NLA_F_NESTED, b"".join(parts))


def _cstr(text: str) -> bytes:
    return text.encode() + b"\0"


def _message(kind: int, flags: int, seq: int, body: bytes, family: int = NFPROTO_INET) -> bytes:
    payload = struct.pack("=BBH", family, 0, 0) + body
    return _HEADER.pack(16 + len(payload), kind, flags, seq, 0) + payload


def _batch_marker(kind: int, seq: int) -> bytes:
    payload = struct.pack("=BBH", 0, 0, socket.htons(NFNL_SUBSYS_NFTABLES))
    return _HEADER.pack(16 + len(payload), kind, NLM_F_REQUEST, seq, 0) + payload


def _nft_type(msg: int) -> int:
    return (NFNL_SUBSYS_NFTABLES << 8) | msg


def _interval_elements(ranges: Iterable[tuple[int, int]], width: int) -> list[bytes]:
    size = width // 8
    top = (1 << width) - 1
    end_flags = _attr(NFTA_SET_ELEM_FLAGS, struct.pack(">I", NFT_SET_ELEM_INTERVAL_END))
    open_udata = _attr(
        NFTA_SET_ELEM_USERDATA,
        struct.pack("=BBI", NFTNL_UDATA_SET_ELEM_FLAGS, 4, NFTNL_SET_ELEM_F_INTERVAL_OPEN),
    )
    out: list[bytes] = []
    for first, last in ranges:
        key = _nest(NFTA_SET_ELEM_KEY, _attr(NFTA_DATA_VALUE, first.to_bytes(size, "big")))
        if last == top:
            out.append(_nest(NFTA_LIST_ELEM, key, open_udata))
            continue
        out.append(_nest(NFTA_LIST_ELEM, key))
        end = _nest(NFTA_SET_ELEM_KEY, _attr(NFTA_DATA_VALUE, (last + 1).to_bytes(size, "big")))
        out.append(_nest(NFTA_LIST_ELEM, end, end_flags))
    return out


@dataclass(frozen=True, slots=True)
class ElementBatch:
    """One set's element changes: inclusive ranges to delete and to add."""

    set_name: str
    family: int
    removed: Sequence[tuple[int, int]]
    added: Sequence[tuple[int, int]]


def _libc_setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def _open_socket(netns: str | None) -> socket.socket:
    """A NETLINK_NETFILTER socket in ``netns`` (``None``: the caller's namespace)."""
    if netns is None:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        sock.bind((0, 0))
        return sock
    result: list[socket.socket] = []
    failure: list[BaseException] = []

    def enter() -> None:
        try:
            fd = os.open(f"/run/netns/{netns}", os.O_RDONLY | os.O_CLOEXEC)
            try:
                _libc_setns(fd)
            finally:
                os.close(fd)
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
            sock.bind((0, 0))
            result.append(sock)
        except BaseException as exc:  # handed to the caller's thread below
            failure.append(exc)

    # The thread's namespace changes, never the caller's; it ends right after.
    worker = threading.Thread(target=enter, name=f"netns-{netns}", daemon=True)
    worker.start()
    worker.join(timeout=10)
    if failure:
        exc = failure[0]
        if isinstance(exc, FileNotFoundError):
            raise DataplaneError(f"network namespace {netns!r} does not exist") from exc
        if isinstance(exc, PermissionError):
            raise EnvironmentProblem(
                f"cannot enter network namespace {netns!r}", hint="run as root"
            ) from exc
        raise DataplaneError(f"cannot open a netlink socket in {netns!r}: {exc}") from exc
    if not result:
        raise DataplaneError(f"entering network namespace {netns!r} did not finish")
    return result[0]


_ERRNO_MEANING = {
    errno.EEXIST: "an added interval overlaps an element already in the set",
    errno.ENOENT: "the table, set or chain, or an element to delete, does not exist",
    errno.ENOTEMPTY: "an added interval overlaps an element already in the set",
    errno.EPERM: "not permitted (CAP_NET_ADMIN is needed)",
    errno.EINVAL: "the kernel rejected the request as invalid",
}


class NfNetlink:
    """A NETLINK_NETFILTER socket for our table's element updates and marker reads."""

    def __init__(self, netns: str | None = None, *, timeout: float = 30.0) -> None:
        self.netns = netns
        self.timeout = timeout
        self._seq = (os.getpid() << 12) & 0x7FFFFFFF

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0x7FFFFFFF
        return self._seq

    def update_elements(
        self,
        table: str,
        batches: Sequence[ElementBatch],
        *,
        marker: tuple[str, str] | None = None,
        family: int = NFPROTO_INET,
    ) -> None:
        """Apply all deletions, then all additions, then the marker rewrite, atomically.

        ``marker`` is ``(chain, comment)``: the chain is flushed and gets one ``return`` rule
        carrying the comment. Raises ``DataplaneError`` (nothing changed) on any refusal.
        """
        messages: list[tuple[int, bytes, str]] = []  # (seq, bytes, description)
        for kind, msg in (("delete", NFT_MSG_DELSETELEM), ("add", NFT_MSG_NEWSETELEM)):
            flags = NLM_F_REQUEST | NLM_F_ACK | (NLM_F_CREATE if kind == "add" else 0)
            for batch in batches:
                ranges = batch.removed if kind == "delete" else batch.added
                if not ranges:
                    continue
                width = 32 if batch.family == 4 else 128
                head = _attr(NFTA_SET_ELEM_LIST_TABLE, _cstr(table)) + _attr(
                    NFTA_SET_ELEM_LIST_SET, _cstr(batch.set_name)
                )
                chunk: list[bytes] = []
                size = 0
                elements = _interval_elements(ranges, width)
                for index, element in enumerate(elements):
                    chunk.append(element)
                    size += len(element)
                    if size >= _CHUNK_BYTES or index == len(elements) - 1:
                        seq = self._next_seq()
                        body = head + _nest(NFTA_SET_ELEM_LIST_ELEMENTS, *chunk)
                        messages.append(
                            (
                                seq,
                                _message(_nft_type(msg), flags, seq, body, family),
                                f"{kind} elements of set {batch.set_name}",
                            )
                        )
                        chunk, size = [], 0
        if marker is not None:
            chain, comment = marker
            where = _attr(NFTA_RULE_TABLE, _cstr(table)) + _attr(NFTA_RULE_CHAIN, _cstr(chain))
            seq = self._next_seq()
            messages.append(
                (
                    seq,
                    _message(
                        _nft_type(NFT_MSG_DELRULE), NLM_F_REQUEST | NLM_F_ACK, seq, where, family
                    ),
                    f"flush chain {chain}",
                )
            )
            verdict = _nest(
                NFTA_IMMEDIATE_DATA,
                _nest(NFTA_DATA_VERDICT, _attr(NFTA_VERDICT_CODE, struct.pack(">i", NFT_RETURN))),
            )
            expr = _nest(
                NFTA_LIST_ELEM,
                _attr(NFTA_EXPR_NAME, _cstr("immediate")),
                _nest(
                    NFTA_EXPR_DATA,
                    _attr(NFTA_IMMEDIATE_DREG, struct.pack(">I", NFT_REG_VERDICT)),
                    verdict,
                ),
            )
            text = _cstr(comment)
            if len(text) > 255:
                raise DataplaneError("marker comment too long for a rule's user data")
            udata = struct.pack("=BB", NFTNL_UDATA_RULE_COMMENT, len(text)) + text
            body = where + _nest(NFTA_RULE_EXPRESSIONS, expr) + _attr(NFTA_RULE_USERDATA, udata)
            seq = self._next_seq()
            messages.append(
                (
                    seq,
                    _message(
                        _nft_type(NFT_MSG_NEWRULE),
                        NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_APPEND,
                        seq,
                        body,
                        family,
                    ),
                    f"write the marker in chain {chain}",
                )
            )
        if not messages:
            return
        self._transact(messages)

    def _transact(self, messages: list[tuple[int, bytes, str]]) -> None:
        begin = _batch_marker(NFNL_MSG_BATCH_BEGIN, self._next_seq())
        end = _batch_marker(NFNL_MSG_BATCH_END, self._next_seq())
        data = begin + b"".join(m for _, m, _ in messages) + end
        described = {seq: what for seq, _, what in messages}
        try:
            sock = _open_socket(self.netns)
        except OSError as exc:
            raise DataplaneError(f"cannot open a netlink socket: {exc}") from exc
        with sock:
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, len(data) + 65536)
                sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 4 << 20)
            except PermissionError as exc:
                raise EnvironmentProblem(
                    "cannot size the netlink socket buffers", hint="run as root"
                ) from exc
            sock.settimeout(self.timeout)
            try:
                sock.sendall(data)
                self._collect_acks(sock, described)
            except TimeoutError as exc:
                raise DataplaneError(
                    f"the kernel did not answer the element update within {self.timeout:g} s",
                    transient=True,
                ) from exc
            except OSError as exc:
                raise DataplaneError(f"netlink element update failed: {exc}") from exc

    @staticmethod
    def _collect_acks(sock: socket.socket, described: dict[int, str]) -> None:
        waiting = set(described)
        errors: list[tuple[int, int]] = []
        while waiting:
            data = sock.recv(1 << 20)
            offset = 0
            while offset + 16 <= len(data):
                length, kind, _flags, seq, _pid = _HEADER.unpack_from(data, offset)
                if length < 16:
                    break
                if kind == NLMSG_ERROR:
                    (code,) = struct.unpack_from("=i", data, offset + 16)
                    if code:
                        errors.append((seq, -code))
                    waiting.discard(seq)
                offset += (length + 3) & ~3
            if errors:
                break
        if errors:
            seq, code = errors[0]
            what = described.get(seq, "the batch")
            meaning = _ERRNO_MEANING.get(code, os.strerror(code))
            if code == errno.EPERM:
                raise EnvironmentProblem(
                    f"nftables refused to {what}: {meaning}", hint="run as root"
                )
            raise DataplaneError(
                f"nftables refused to {what}: {meaning} ({errno.errorcode.get(code, code)}); "
                "nothing was changed",
                hint="the table may have been changed by someone else; a full apply repairs it",
            )

    def rule_comments(self, table: str, chain: str, *, family: int = NFPROTO_INET) -> list[str]:
        """The comments of the rules of one chain (an empty list if the chain does not exist).

        A rule dump filtered by table and chain reads no set elements: it is cheap whatever the
        size of the sets, unlike ``nft list chain``.
        """
        seq = self._next_seq()
        body = _attr(NFTA_RULE_TABLE, _cstr(table)) + _attr(NFTA_RULE_CHAIN, _cstr(chain))
        request = _message(
            _nft_type(NFT_MSG_GETRULE), NLM_F_REQUEST | NLM_F_DUMP, seq, body, family
        )
        try:
            sock = _open_socket(self.netns)
        except OSError as exc:
            raise DataplaneError(f"cannot open a netlink socket: {exc}") from exc
        comments: list[str] = []
        with sock:
            sock.settimeout(self.timeout)
            try:
                sock.sendall(request)
                while True:
                    data = sock.recv(1 << 20)
                    offset = 0
                    while offset + 16 <= len(data):
                        length, kind, _flags, _seq, _pid = _HEADER.unpack_from(data, offset)
                        if length < 16:
                            return comments
                        if kind == NLMSG_DONE:
                            return comments
                        if kind == NLMSG_ERROR:
                            (code,) = struct.unpack_from("=i", data, offset + 16)
                            if code in (0, -errno.ENOENT):
                                return comments
                            raise DataplaneError(f"cannot list chain {chain}: {os.strerror(-code)}")
                        if kind == _nft_type(NFT_MSG_NEWRULE):
                            comment = _rule_comment(data[offset + 20 : offset + length])
                            if comment is not None:
                                comments.append(comment)
                        offset += (length + 3) & ~3
            except TimeoutError as exc:
                raise DataplaneError(
                    "the kernel did not answer a rule dump", transient=True
                ) from exc
            except OSError as exc:
                raise DataplaneError(f"netlink rule dump failed: {exc}") from exc


def _attrs(data: bytes) -> Iterable[tuple[int, bytes]]:
    offset = 0
    while offset + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, offset)
        if length < 4:
            return
        yield kind & ~NLA_F_NESTED, data[offset + 4 : offset + length]
        offset += (length + 3) & ~3


def _rule_comment(payload: bytes) -> str | None:
    for kind, value in _attrs(payload):
        if kind != NFTA_RULE_USERDATA:
            continue
        offset = 0
        while offset + 2 <= len(value):
            utype, ulen = value[offset], value[offset + 1]
            if utype == NFTNL_UDATA_RULE_COMMENT:
                return (
                    value[offset + 2 : offset + 2 + ulen].rstrip(b"\0").decode("utf-8", "replace")
                )
            offset += 2 + ulen
    return None


def read_rule_comments(table: str, chain: str, netns: str | None = None) -> list[str]:
    """Shortcut for ``NfNetlink(netns).rule_comments(table, chain)``."""
    return NfNetlink(netns).rule_comments(table, chain)
