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

IPv4 element lists are built with NumPy (every element of a family has the same layout, so a
template row is repeated and the keys written into it): a 1% change of a 200k-range set is
thousands of elements, and encoding them one by one in Python cost as much as the kernel's
work.

Network namespaces: the socket is opened by a short-lived thread that first enters the
namespace with ``setns(2)``; a socket stays in the namespace it was created in. An
:class:`NfNetlink` keeps its socket open between calls (the agent makes one per namespace
and reuses it for every update and marker read); it opens a new one when the namespace behind
the name changed (``ip netns del`` and ``add`` again), and after any error, so that a late
answer to an old request can never be read as the answer to a new one.
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
from typing import Any

import numpy as np

from egressguard.errors import DataplaneError, EnvironmentProblem

__all__ = ["ElementBatch", "NfNetlink", "element_chunks"]

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
    """One ``NFTA_LIST_ELEM`` per element, range by range (the reference encoding).

    Used for IPv6 and for a range that ends at the family's last address; IPv4 goes through
    :func:`_v4_pairs`, which a unit test holds byte-equal to this function.
    """
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


# An IPv4 range [first, last] with last < 255.255.255.255 is always these 40 bytes: a start
# element (16) and an end element (24); only the two keys differ from range to range.
_V4_PAIR = np.frombuffer(b"".join(_interval_elements([(0, 0)], 32)), dtype=np.uint8).copy()
_V4_PAIR_SIZE = 40
_V4_FIRST_AT = 12  # list elem header, key header, data header: 3 x 4 bytes
_V4_LAST_AT = 16 + 12  # the end key: after the 16-byte start element and 3 headers
if _V4_PAIR.size != _V4_PAIR_SIZE:  # pragma: no cover - a layout change would be a bug
    raise AssertionError("unexpected IPv4 element layout")


def _v4_pairs(first: Any, last: Any) -> Any:
    """``(n, 40)`` uint8 rows: the start and end elements of each IPv4 range (last < top)."""
    count = int(first.shape[0])
    rows = np.empty((count, _V4_PAIR_SIZE), dtype=np.uint8)
    rows[:] = _V4_PAIR
    rows[:, _V4_FIRST_AT : _V4_FIRST_AT + 4] = (
        np.asarray(first, dtype=np.int64).astype(">u4").view(np.uint8).reshape(count, 4)
    )
    rows[:, _V4_LAST_AT : _V4_LAST_AT + 4] = (
        (np.asarray(last, dtype=np.int64) + 1).astype(">u4").view(np.uint8).reshape(count, 4)
    )
    return rows


def element_chunks(ranges: Sequence[tuple[int, int]] | Any, family: int) -> list[bytes]:
    """Element-list payloads for ``ranges``, each below ``_CHUNK_BYTES``; a range's start and
    end element always travel in the same message.

    ``ranges`` is a sequence of inclusive ``(first, last)`` pairs or an ``(n, 2)`` integer
    array (IPv4 only).
    """
    if family == 4:
        pairs = np.asarray(ranges, dtype=np.int64).reshape(-1, 2)
        if pairs.shape[0] == 0:
            return []
        top = 0xFFFFFFFF
        closed = pairs[:, 1] != top
        rows = _v4_pairs(pairs[closed, 0], pairs[closed, 1])
        per_chunk = _CHUNK_BYTES // _V4_PAIR_SIZE
        chunks = [rows[i : i + per_chunk].tobytes() for i in range(0, rows.shape[0], per_chunk)]
        if not closed.all():  # a range up to 255.255.255.255: one open start element
            tail = b"".join(
                _interval_elements([(int(f), top) for f in pairs[~closed, 0].tolist()], 32)
            )
            if chunks and len(chunks[-1]) + len(tail) <= _CHUNK_BYTES:
                chunks[-1] += tail
            else:
                chunks.append(tail)
        return chunks
    chunks = []
    current: list[bytes] = []
    size = 0
    for first, last in ranges:
        one = b"".join(_interval_elements([(first, last)], 128))
        if current and size + len(one) > _CHUNK_BYTES:
            chunks.append(b"".join(current))
            current, size = [], 0
        current.append(one)
        size += len(one)
    if current:
        chunks.append(b"".join(current))
    return chunks


@dataclass(frozen=True, slots=True)
class ElementBatch:
    """One set's element changes: inclusive ranges to delete and to add (pairs, or ``(n, 2)``
    integer arrays for IPv4, as :func:`element_chunks` takes them)."""

    set_name: str
    family: int
    removed: Sequence[tuple[int, int]]
    added: Sequence[tuple[int, int]]


def _libc_setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def _namespace_identity(netns: str | None) -> tuple[int, int] | None:
    """``(device, inode)`` of the namespace behind ``/run/netns/NAME`` (``None``: our own)."""
    if netns is None:
        return None
    try:
        found = os.stat(f"/run/netns/{netns}")
    except FileNotFoundError as exc:
        raise DataplaneError(f"network namespace {netns!r} does not exist") from exc
    except OSError as exc:
        raise DataplaneError(f"cannot look at network namespace {netns!r}: {exc}") from exc
    return found.st_dev, found.st_ino


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

_RCVBUF = 4 << 20


class NfNetlink:
    """A NETLINK_NETFILTER socket for our table's element updates and marker reads.

    The socket is opened at first use and kept (see the module docstring); ``close()`` closes
    it, and so does leaving a ``with`` block. One request at a time (a lock serialises
    callers from several threads).
    """

    def __init__(self, netns: str | None = None, *, timeout: float = 30.0) -> None:
        self.netns = netns
        self.timeout = timeout
        self._seq = (os.getpid() << 12) & 0x7FFFFFFF
        self._sock: socket.socket | None = None
        self._identity: tuple[int, int] | None = None
        self._sndbuf = 0
        self._lock = threading.Lock()
        #: How many sockets this object opened (tests check that updates reuse one).
        self.opened = 0

    def __enter__(self) -> NfNetlink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        sock = getattr(self, "_sock", None)
        if sock is not None:
            sock.close()

    def close(self) -> None:
        """Close the socket (a later call opens a new one)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0x7FFFFFFF
        return self._seq

    def _socket(self) -> socket.socket:
        identity = _namespace_identity(self.netns)
        if self._sock is not None and identity == self._identity:
            return self._sock
        self.close()
        try:
            sock = _open_socket(self.netns)
        except OSError as exc:
            raise DataplaneError(f"cannot open a netlink socket: {exc}") from exc
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, _RCVBUF)
        except PermissionError as exc:
            sock.close()
            raise EnvironmentProblem(
                "cannot size the netlink socket buffers", hint="run as root"
            ) from exc
        sock.settimeout(self.timeout)
        self._sock, self._identity, self._sndbuf = sock, identity, 0
        self.opened += 1
        return sock

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
        messages = self._element_messages(table, batches, family)
        if marker is not None:
            messages.extend(self._marker_messages(table, *marker, family=family))
        if messages:
            self._transact(messages)

    def _element_messages(
        self, table: str, batches: Sequence[ElementBatch], family: int
    ) -> list[tuple[int, bytes, str]]:
        messages: list[tuple[int, bytes, str]] = []  # (seq, bytes, description)
        for kind, msg in (("delete", NFT_MSG_DELSETELEM), ("add", NFT_MSG_NEWSETELEM)):
            flags = NLM_F_REQUEST | NLM_F_ACK | (NLM_F_CREATE if kind == "add" else 0)
            for batch in batches:
                ranges = batch.removed if kind == "delete" else batch.added
                if len(ranges) == 0:
                    continue
                head = _attr(NFTA_SET_ELEM_LIST_TABLE, _cstr(table)) + _attr(
                    NFTA_SET_ELEM_LIST_SET, _cstr(batch.set_name)
                )
                for chunk in element_chunks(ranges, batch.family):
                    seq = self._next_seq()
                    body = head + _attr(NFTA_SET_ELEM_LIST_ELEMENTS | NLA_F_NESTED, chunk)
                    messages.append(
                        (
                            seq,
                            _message(_nft_type(msg), flags, seq, body, family),
                            f"{kind} elements of set {batch.set_name}",
                        )
                    )
        return messages

    def _marker_messages(
        self, table: str, chain: str, comment: str, *, family: int
    ) -> list[tuple[int, bytes, str]]:
        where = _attr(NFTA_RULE_TABLE, _cstr(table)) + _attr(NFTA_RULE_CHAIN, _cstr(chain))
        flush_seq = self._next_seq()
        flush = _message(
            _nft_type(NFT_MSG_DELRULE), NLM_F_REQUEST | NLM_F_ACK, flush_seq, where, family
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
        add_seq = self._next_seq()
        add = _message(
            _nft_type(NFT_MSG_NEWRULE),
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_APPEND,
            add_seq,
            body,
            family,
        )
        return [
            (flush_seq, flush, f"flush chain {chain}"),
            (add_seq, add, f"write the marker in chain {chain}"),
        ]

    def _transact(self, messages: list[tuple[int, bytes, str]]) -> None:
        with self._lock:
            begin = _batch_marker(NFNL_MSG_BATCH_BEGIN, self._next_seq())
            end = _batch_marker(NFNL_MSG_BATCH_END, self._next_seq())
            data = begin + b"".join(m for _, m, _ in messages) + end
            described = {seq: what for seq, _, what in messages}
            sock = self._socket()
            try:
                if len(data) + 65536 > self._sndbuf:
                    self._sndbuf = len(data) + 65536
                    sock.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, self._sndbuf)
                sock.sendall(data)
                self._collect_acks(sock, described)
            except PermissionError as exc:
                self.close()
                raise EnvironmentProblem(
                    "cannot size the netlink socket buffers", hint="run as root"
                ) from exc
            except TimeoutError as exc:
                self.close()
                raise DataplaneError(
                    f"the kernel did not answer the element update within {self.timeout:g} s",
                    transient=True,
                ) from exc
            except OSError as exc:
                self.close()
                raise DataplaneError(f"netlink element update failed: {exc}") from exc
            except BaseException:
                self.close()  # a refusal: answers to the rest of the batch may still be queued
                raise

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
                if kind == NLMSG_ERROR and seq in described:
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
        with self._lock:
            seq = self._next_seq()
            body = _attr(NFTA_RULE_TABLE, _cstr(table)) + _attr(NFTA_RULE_CHAIN, _cstr(chain))
            request = _message(
                _nft_type(NFT_MSG_GETRULE), NLM_F_REQUEST | NLM_F_DUMP, seq, body, family
            )
            sock = self._socket()
            try:
                sock.sendall(request)
                return self._dump_comments(sock, seq, chain)
            except TimeoutError as exc:
                self.close()
                raise DataplaneError(
                    "the kernel did not answer a rule dump", transient=True
                ) from exc
            except OSError as exc:
                self.close()
                raise DataplaneError(f"netlink rule dump failed: {exc}") from exc
            except BaseException:
                self.close()
                raise

    @staticmethod
    def _dump_comments(sock: socket.socket, seq: int, chain: str) -> list[str]:
        comments: list[str] = []
        while True:
            data = sock.recv(1 << 20)
            offset = 0
            while offset + 16 <= len(data):
                length, kind, _flags, got_seq, _pid = _HEADER.unpack_from(data, offset)
                if length < 16:
                    raise DataplaneError("the kernel sent a malformed netlink message")
                if got_seq == seq:
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
