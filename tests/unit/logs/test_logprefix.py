"""The log-prefix contract: Felix's rendering rules, validation, and decoding what we see."""

from __future__ import annotations

import pytest

from egressguard import logprefix
from egressguard.errors import InputError
from egressguard.logprefix import PrefixInfo, decode, encode


def test_default_prefix_is_calicos() -> None:
    assert encode() == "calico-packet: "
    assert decode("calico-packet: ") == PrefixInfo()
    assert decode("calico-packet") == PrefixInfo()
    assert decode("calico-packets: ") is None


def test_specifiers_are_replaced_like_felix() -> None:
    # felix/rules/policy_test.go: "foobar %t %k %p %n - %n %p %k %t" for a GNP in the default
    # tier, and "calico-packet %k:%p:%t:%n" for NetworkPolicy app/foo in tier admin.
    assert encode("foobar %t %k %p %n - %n %p %k %t", tier="default", kind="gnp", name="foo") == (
        "foobar default gnp foo foo - foo foo gnp default: "
    )
    assert (
        encode("calico-packet %k:%p:%t:%n", tier="admin", kind="np", name="foo", namespace="app")
        == "calico-packet np:app/foo:admin:foo: "
    )


def test_percent_is_not_an_escape() -> None:
    # Felix scans for %[tknp] left to right: "%%t" is a literal '%' then the tier.
    assert encode("x %%t %y", tier="a") == "x %a %y: "
    assert decode("x %a %y: ", "x %%t %y") == PrefixInfo(tier="a")


def test_decode_reads_what_encode_wrote() -> None:
    template = "calico-packet %t %k:%p"
    text = encode(
        template, tier="egressguard", kind="knp", name="knp.default.web", namespace="shop"
    )
    assert decode(text, template) == PrefixInfo("egressguard", "knp", "knp.default.web", "shop")
    without_ns = encode(template, tier="egressguard", kind="gnp", name="block")
    assert decode(without_ns, template) == PrefixInfo("egressguard", "gnp", "block", None)


def test_repeated_specifiers_must_agree() -> None:
    assert decode("x a a", "x %n %n") == PrefixInfo(name="a")
    assert decode("x a b", "x %n %n") is None
    assert decode("x ns/a a", "x %p %n") == PrefixInfo(name="a", namespace="ns")
    assert decode("x ns/a other/a", "x %p %p") is None


def test_truncated_or_foreign_prefixes_do_not_decode() -> None:
    template = "calico-packet %k:%p"
    full = encode(template, kind="np", name="a-rather-long-policy-name", namespace="prod")
    cut = full[: logprefix.IPTABLES_MAX_LENGTH]  # what iptables leaves: no ': ' any more
    assert decode(cut, template) == PrefixInfo(kind="np", name="a-rathe", namespace="prod")
    assert decode(cut, template, require_suffix=True) is None
    assert decode(full, template, require_suffix=True) is not None
    assert decode("[UFW BLOCK] ", template) is None


@pytest.mark.parametrize(
    ("template", "values", "message"),
    [
        ('calico "packet"', {}, "characters Calico does not allow"),
        ("calico.packet", {}, "characters Calico does not allow"),
        ("x %n", {}, "no name"),
        ("x %k", {"kind": "GNP"}, "not a valid Kubernetes kind"),
        ("x %n", {"name": "Bad_Name"}, "not a valid Kubernetes name"),
        ("x %p", {"name": "a", "namespace": "a.b"}, "not a valid Kubernetes namespace"),
        ("x %n", {"name": "a" * 130}, "the limit is 126"),
    ],
)
def test_encode_rejects(template: str, values: dict[str, str], message: str) -> None:
    with pytest.raises(InputError, match=message):
        encode(template, **values)


def test_length_limit_counts_the_suffix() -> None:
    text = encode("p" * 124)
    assert len(text) == logprefix.MAX_LENGTH
    with pytest.raises(InputError):
        encode("p" * 125)


def test_decodable_templates() -> None:
    assert logprefix.is_decodable("calico-packet %t %k:%p")
    assert logprefix.is_decodable("%p/%t")
    assert not logprefix.is_decodable("%t-%n")  # 'a-b-c' splits two ways
    assert not logprefix.is_decodable("%t%n")
    assert logprefix.has_specifiers("x %k")
    assert not logprefix.has_specifiers("x %y")


def test_short_kind_names_are_calicos() -> None:
    assert logprefix.KIND_SHORT_NAMES["GlobalNetworkPolicy"] == "gnp"
    assert logprefix.KIND_SHORT_NAMES["KubernetesNetworkPolicy"] == "knp"
    assert logprefix.KIND_SHORT_NAMES["Profile"] == "pro"
