"""``logs parse`` with enrichment, end to end in-process: network sets from manifests and from a
real build of real data (its lock's provenance), pods from a file, de-duplication, usage errors.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from egressguard.app.build import CRITICAL, PUBLIC_DNS, SPECIAL_PURPOSE
from egressguard.calico.load import load_paths
from egressguard.cidr.sets import AddressSet
from egressguard.cli import main

ROOT = Path(__file__).resolve().parents[3]
COUNTRIES = "countries/herrbischoff-2025-09"
FEODO = "feeds/abusech/feodo_ipblocklist_recommended.2022-07-08.txt"

LINE = (
    "2025-01-19T16:13:{sec:02d}.000000+00:00 aks-1 kernel: [ 6236.551431] calico-packet: "
    "IN=azv7c40892f581 OUT=eth0 SRC={src} DST={dst} LEN=60 TOS=0x00 PREC=0x00 TTL=63 "
    "ID={ident} DF PROTO=TCP SPT={spt} DPT=443 WINDOW=64240 RES=0x00 SYN URGP=0 "
)


def line(
    dst: str, *, sec: int = 46, src: str = "10.244.0.179", ident: int = 1, spt: int = 53940
) -> str:
    return LINE.format(sec=sec, src=src, dst=dst, ident=ident, spt=spt)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[dict[str, Any]], str]:
    code = main(["logs", "parse", *argv])
    out, err = capsys.readouterr()
    return code, [json.loads(x) for x in out.splitlines()], err


def nth_cidr(path: Path, n: int = 0) -> str:
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip()[:1].isalnum()][n]


def test_manifests_give_the_set_of_the_blog_example(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    log = tmp_path / "messages"
    log.write_text(line("217.160.0.92") + "\n" + line("198.51.100.1", spt=2) + "\n")
    code, events, _ = run(capsys, str(log), "--manifests", str(ROOT / "examples" / "blog"))
    assert code == 0
    assert [(e["dst"], e["set"]) for e in events] == [
        ("217.160.0.92", "egress-traffic-blocking"),
        ("198.51.100.1", None),
    ]
    assert all(e["repeat_count"] is None for e in events)  # de-duplication is off by default


@pytest.fixture
def built(tmp_path: Path, data_dir: Path) -> Path:
    """A real build: a static list, the abuse.ch Feodo list and two countries' real CIDR
    files, into tmp_path/out."""
    config = {
        "apiVersion": "egressguard.io/v1alpha1",
        "kind": "Blocklist",
        "metadata": {"name": "egress-blocklist"},
        "spec": {
            "sources": [
                {"name": "inline", "static": ["198.51.100.0/24", "2.56.20.0/24"]},
                {"name": "feodo", "file": str(data_dir / FEODO), "format": "abusech"},
                {
                    "name": "world",
                    "geo": {
                        "provider": "cidr-dir",
                        "files": str(data_dir / COUNTRIES),
                        "countries": ["DE", "NL"],
                    },
                },
            ]
        },
    }
    path = tmp_path / "blocklist.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / "out"
    args = ["build", "-c", str(path), "-o", str(out), "--state-dir", str(tmp_path / "st"), "-q"]
    assert main(args) == 0
    return out


def test_a_built_blocklist_names_set_feeds_and_country(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, data_dir: Path, built: Path
) -> None:
    capsys.readouterr()
    assert nth_cidr(data_dir / COUNTRIES / "ipv4" / "de.cidr") == "2.56.20.0/22"
    de = nth_cidr(data_dir / COUNTRIES / "ipv4" / "de.cidr", 1)  # not in the static list
    nl = nth_cidr(data_dir / COUNTRIES / "ipv4" / "nl.cidr")
    de_addr = de.split("/")[0].rsplit(".", 1)[0] + ".9"
    nl_addr = nl.split("/")[0].rsplit(".", 1)[0] + ".9"
    v6 = nth_cidr(data_dir / COUNTRIES / "ipv6" / "nl.cidr").split("/")[0] + "9"
    log = tmp_path / "messages"
    lines = [
        line(de_addr),
        line(nl_addr, spt=2),
        line("198.51.100.7", spt=3),
        line("203.0.113.9", spt=4),
        line("2.56.20.5", spt=5),
    ]
    log.write_text("\n".join(lines) + "\n")
    code, events, err = run(capsys, str(log), "--blocklist", str(built))
    assert code == 0, err
    got = [(e["dst"], e["set"], e["feeds"], e["country"]) for e in events]
    assert got[0] == (de_addr, "egress-blocklist", ["world"], "DE")
    assert got[1] == (nl_addr, "egress-blocklist", ["world"], "NL")
    assert got[2] == ("198.51.100.7", "egress-blocklist", ["inline"], None)
    assert got[3] == ("203.0.113.9", None, [], None)
    if de == "2.56.20.0/22":  # the static list overlaps Germany's first block
        assert got[4] == ("2.56.20.5", "egress-blocklist", ["inline", "world"], "DE")
    # IPv6 too, straight from the index of the same directory
    ipv6_log = tmp_path / "v6"
    ipv6_log.write_text(
        "2025-01-19T16:13:46Z n kernel: calico-packet: IN=cali1 OUT=eth0 SRC=fd00::1 "
        f"DST={v6} LEN=80 TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=UDP SPT=1 DPT=53 LEN=40\n"
    )
    code, (six,), _ = run(capsys, str(ipv6_log), "--blocklist", str(built))
    assert (six["set"], six["feeds"], six["country"]) == ("egress-blocklist", ["world"], "NL")


def test_the_lock_records_provenance_deterministically(
    tmp_path: Path, data_dir: Path, built: Path
) -> None:
    lock = json.loads((built / "egressguard.lock").read_text())
    by_name = {s["name"]: s for s in lock["sources"]}
    assert set(by_name["world"]["provenance"]["countries"]) == {"DE", "NL"}
    assert "198.51.100.0/24" in by_name["inline"]["provenance"]["cidrs"]["ipv4"].split()
    feodo = AddressSet.of(*by_name["feodo"]["provenance"]["cidrs"]["ipv4"].split())
    raw = AddressSet.of(
        *(ln.split()[0] for ln in (data_dir / FEODO).read_text().splitlines() if ln[:1].isdigit())
    )
    shards = AddressSet.of(*(net for s in load_paths([built]).network_sets for net in s.nets))
    assert feodo <= shards  # what it contributed is in the set ...
    protected = AddressSet.of(*PUBLIC_DNS, *(c for c, _ in (*SPECIAL_PURPOSE, *CRITICAL)))
    assert raw - feodo <= protected  # ... and all of it but what the build must subtract
    assert feodo
    # a second build of the same input writes the same lock, byte for byte
    again = tmp_path / "again"
    config = tmp_path / "blocklist.yaml"
    args = ["build", "-c", str(config), "-o", str(again), "--state-dir", str(tmp_path / "s2")]
    assert main([*args, "-q"]) == 0
    assert (again / "egressguard.lock").read_bytes() == (built / "egressguard.lock").read_bytes()


def test_pods_file_and_dedup_window(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    pods = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": "shop-7d9f",
                    "namespace": "web",
                    "creationTimestamp": "2025-01-19T16:00:00Z",
                },
                "spec": {"nodeName": "aks-1"},
                "status": {"phase": "Running", "podIP": "10.244.0.179"},
            }
        ],
    }
    pods_file = tmp_path / "pods.yaml"
    pods_file.write_text(yaml.safe_dump(pods))
    log = tmp_path / "messages"
    lines = [
        line("217.160.0.92", sec=40, ident=1),
        line("217.160.0.92", sec=41, ident=2),  # the SYN retried 1 s later: same port
        line("217.160.0.92", sec=41, ident=3, spt=53941),  # another connection
        line("217.160.0.92", sec=44, ident=4),  # 4 s after the first: a new window
        line("217.160.0.92", sec=45, ident=5, src="10.244.0.200"),  # no such pod
    ]
    log.write_text("\n".join(lines) + "\n")
    args = [str(log), "--pods", str(pods_file), "--dedup-window", "2"]
    code, events, _ = run(capsys, *args, "--stats")
    assert code == 0
    got = [(e["ip_id"], e["repeat_count"], e["src_namespace"], e["src_pod"]) for e in events]
    assert got == [
        (1, 2, "web", "shop-7d9f"),
        (3, 1, "web", "shop-7d9f"),
        (4, 1, "web", "shop-7d9f"),
        (5, 1, None, None),
    ]
    code, plain, _ = run(capsys, str(log), "--pods", str(pods_file))
    assert [e["repeat_count"] for e in plain] == [None] * 5


def test_usage_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    log = tmp_path / "messages"
    log.write_text(line("217.160.0.92") + "\n")
    (tmp_path / "not-a-build").mkdir()
    (tmp_path / "empty.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    for extra, says in [
        (["--blocklist", str(tmp_path / "not-a-build")], "egressguard.lock"),
        (["--manifests", str(tmp_path / "missing")], "no such file"),
        (["--manifests", str(tmp_path / "empty.yaml")], "no valid GlobalNetworkSet"),
        (["--dedup-window", "-1"], "--dedup-window"),
        (["--pods", str(tmp_path / "missing.yaml")], "--pods"),
    ]:
        assert main(["logs", "parse", str(log), *extra]) == 2, extra
        assert says in capsys.readouterr().err, extra


def test_help_lists_the_enrichment_options(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("parse", "follow"):
        with pytest.raises(SystemExit):
            main(["logs", command, "--help"])
        out = capsys.readouterr().out
        for option in ("--manifests", "--blocklist", "--pods", "--kube", "--dedup-window"):
            assert option in out, (command, option)
