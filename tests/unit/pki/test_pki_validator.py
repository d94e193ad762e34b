"""opush.backends.pki: the verdicts ValidateCert reports, on certificates minted per test."""

from __future__ import annotations

import base64
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.defer import ensureDeferred
from twisted.python.failure import Failure

from opush.backends.pki import CertificateValidator, CrlUnavailable, Verdict
from opush.commands.validatecert import STATUS, certificate_bytes
from opush.wbxml import E, ns, set_opaque
from tests.support import pki
from tests.support.pki import DAY, NOW, Authority, certificate, crl, der, key

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Drive a coroutine that never waits on the network (fetchers here answer at once)."""
    out: list[Any] = []
    ensureDeferred(coro).addBoth(out.append)
    assert out, "the validation waited on something"
    if isinstance(out[0], Failure):
        out[0].raiseException()
    return out[0]  # type: ignore[no-any-return]


class Crls:
    """A CRL 'server': url -> bytes, or None for unreachable; counts fetches."""

    def __init__(self) -> None:
        self.files: dict[str, bytes | None] = {}
        self.fetches: list[str] = []

    async def fetch(self, url: str) -> bytes:
        self.fetches.append(url)
        data = self.files.get(url)
        if data is None:
            raise CrlUnavailable("connection refused")
        return data


@pytest.fixture(scope="module")
def ca() -> Authority:
    return Authority(crl_base="http://crl.example.org")


def validator(*anchors: Any, crls: Crls | None = None) -> CertificateValidator:
    return CertificateValidator(
        list(anchors), fetch_crl=crls.fetch if crls else None, now=lambda: NOW
    )


def verdict(
    v: CertificateValidator, cert: Any, chain: tuple[Any, ...] = (), crl_check: bool = False
) -> Verdict:
    raw = cert if isinstance(cert, bytes) else der(cert)
    return run(v.validate(raw, [der(c) for c in chain], crl_check))


def test_signer_with_its_chain_is_valid(ca: Authority) -> None:
    assert verdict(validator(ca.root), ca.signer(), (ca.intermediate,)) is Verdict.VALID


def test_pem_is_accepted_too(ca: Authority) -> None:
    assert verdict(validator(ca.root), pki.pem(ca.signer()), (ca.intermediate,)) is Verdict.VALID


def test_without_the_intermediate_the_source_is_untrusted(ca: Authority) -> None:
    assert verdict(validator(ca.root), ca.signer()) is Verdict.UNTRUSTED


def test_a_trusted_intermediate_needs_no_chain(ca: Authority) -> None:
    assert verdict(validator(ca.intermediate), ca.signer()) is Verdict.VALID


def test_unknown_root_is_untrusted(ca: Authority) -> None:
    other = Authority()
    assert verdict(validator(other.root), ca.signer(), (ca.intermediate,)) is Verdict.UNTRUSTED


def test_self_signed_is_untrusted_unless_it_is_an_anchor() -> None:
    k = key()
    own = certificate("bob@example.org", k, email="bob@example.org")
    assert verdict(validator(), own) is Verdict.UNTRUSTED
    assert verdict(validator(own), own) is Verdict.VALID


@pytest.mark.parametrize(
    ("before", "after"),
    [(NOW - 400 * DAY, NOW - DAY), (NOW + DAY, NOW + 400 * DAY)],
    ids=["expired", "not-yet-valid"],
)
def test_signer_outside_its_validity(ca: Authority, before: Any, after: Any) -> None:
    cert = ca.signer(not_before=before, not_after=after)
    assert verdict(validator(ca.root), cert, (ca.intermediate,)) is Verdict.EXPIRED


def test_expired_intermediate(ca: Authority) -> None:
    k = key()
    old = certificate(
        "Old Mail CA",
        k,
        ca.root,
        ca.root_key,
        ca=True,
        key_usage="ca",
        not_before=NOW - 400 * DAY,
        not_after=NOW - DAY,
    )
    signer = certificate("a@example.org", key(), old, k, not_after=NOW + 10 * DAY)
    assert verdict(validator(ca.root), signer, (old,)) is Verdict.CHAIN_EXPIRED


def test_signature_by_another_key_under_the_same_name(ca: Authority) -> None:
    forged = certificate("mallory@example.org", key(), ca.intermediate, key())
    assert verdict(validator(ca.root), forged, (ca.intermediate,)) is Verdict.BAD_SIGNATURE


def test_issuer_that_is_not_a_ca(ca: Authority) -> None:
    k = key()
    not_ca = certificate("Not a CA", k, ca.root, ca.root_key, ca=False, key_usage="sign")
    signer = certificate("a@example.org", key(), not_ca, k)
    assert verdict(validator(ca.root), signer, (not_ca,)) is Verdict.CA_ROLE


def test_issuer_without_basic_constraints(ca: Authority) -> None:
    k = key()
    bare = certificate("Bare issuer", k, ca.root, ca.root_key, ca=None, key_usage=None)
    signer = certificate("a@example.org", key(), bare, k)
    assert verdict(validator(ca.root), signer, (bare,)) is Verdict.CA_ROLE


@pytest.mark.parametrize(
    "kw",
    [
        {"key_usage": "encrypt"},
        {"eku": (ExtendedKeyUsageOID.SERVER_AUTH,)},
    ],
    ids=["encryption-only", "tls-server-only"],
)
def test_usages_that_exclude_signing_mail(ca: Authority, kw: dict[str, Any]) -> None:
    cert = ca.signer(**kw)
    assert verdict(validator(ca.root), cert, (ca.intermediate,)) is Verdict.NOT_FOR_SIGNING


def test_no_usage_extensions_means_any_usage(ca: Authority) -> None:
    cert = ca.signer(key_usage=None, eku=None)
    assert verdict(validator(ca.root), cert, (ca.intermediate,)) is Verdict.VALID


def test_a_loop_of_cross_signed_authorities_is_a_bad_chain() -> None:
    ka, kb = key(), key()
    a0 = certificate("Loop A", ka, ca=True, key_usage="ca")
    b = certificate("Loop B", kb, a0, ka, ca=True, key_usage="ca")
    a = certificate("Loop A", ka, b, kb, ca=True, key_usage="ca")
    signer = certificate("a@example.org", key(), a, ka)
    # a0 is "Loop A" self-signed but nobody trusts it: the walk goes A -> B -> A.
    assert verdict(validator(), signer, (a, b)) in (Verdict.BAD_CHAIN, Verdict.UNTRUSTED)
    assert verdict(validator(), signer, (a, b)) is Verdict.BAD_CHAIN


def test_garbage_is_malformed() -> None:
    assert verdict(validator(), b"not a certificate") is Verdict.MALFORMED
    assert verdict(validator(), b"0\x82\x01") is Verdict.MALFORMED


# ------------------------------------------------------------------ revocation


def test_revoked_signer_is_refused_even_without_checkcrl(ca: Authority) -> None:
    crls = Crls()
    signer = ca.signer()
    crls.files["http://crl.example.org/mail.crl"] = crl(
        ca.intermediate, ca.inter_key, [signer.serial_number]
    )
    crls.files["http://crl.example.org/root.crl"] = crl(ca.root, ca.root_key)
    v = validator(ca.root, crls=crls)
    assert verdict(v, signer, (ca.intermediate,)) is Verdict.REVOKED
    assert verdict(v, signer, (ca.intermediate,), crl_check=True) is Verdict.REVOKED
    other = ca.signer("bob@example.org")
    assert verdict(v, other, (ca.intermediate,), crl_check=True) is Verdict.VALID


def test_revoked_intermediate(ca: Authority) -> None:
    crls = Crls()
    crls.files["http://crl.example.org/mail.crl"] = crl(ca.intermediate, ca.inter_key)
    crls.files["http://crl.example.org/root.crl"] = crl(
        ca.root, ca.root_key, [ca.intermediate.serial_number]
    )
    v = validator(ca.root, crls=crls)
    assert verdict(v, ca.signer(), (ca.intermediate,)) is Verdict.CHAIN_REVOKED


def test_unreachable_crl_counts_only_with_checkcrl(ca: Authority) -> None:
    v = validator(ca.root, crls=Crls())
    assert verdict(v, ca.signer(), (ca.intermediate,)) is Verdict.VALID
    assert verdict(v, ca.signer(), (ca.intermediate,), crl_check=True) is Verdict.REVOCATION_OFFLINE


def test_no_distribution_point_is_an_unknown_status_with_checkcrl() -> None:
    plain = Authority()
    v = validator(plain.root, crls=Crls())
    assert verdict(v, plain.signer(), (plain.intermediate,)) is Verdict.VALID
    assert (
        verdict(v, plain.signer(), (plain.intermediate,), crl_check=True)
        is Verdict.REVOCATION_UNKNOWN
    )


def test_stale_or_foreign_crls_are_not_believed(ca: Authority) -> None:
    signer = ca.signer()
    crls = Crls()
    crls.files["http://crl.example.org/root.crl"] = crl(ca.root, ca.root_key)
    # A stale CRL that lists the signer: not evidence either way.
    crls.files["http://crl.example.org/mail.crl"] = crl(
        ca.intermediate, ca.inter_key, [signer.serial_number], next_update=NOW - DAY
    )
    v = validator(ca.root, crls=crls)
    assert verdict(v, signer, (ca.intermediate,), crl_check=True) is Verdict.REVOCATION_UNKNOWN
    # Signed by someone else: ignored too.
    crls2 = Crls()
    crls2.files["http://crl.example.org/root.crl"] = crl(ca.root, ca.root_key)
    crls2.files["http://crl.example.org/mail.crl"] = crl(
        ca.intermediate, key(), [signer.serial_number]
    )
    v2 = validator(ca.root, crls=crls2)
    assert verdict(v2, signer, (ca.intermediate,)) is Verdict.VALID
    assert verdict(v2, signer, (ca.intermediate,), crl_check=True) is Verdict.REVOCATION_UNKNOWN


def test_crls_are_cached_until_next_update(ca: Authority) -> None:
    crls = Crls()
    crls.files["http://crl.example.org/mail.crl"] = crl(ca.intermediate, ca.inter_key)
    crls.files["http://crl.example.org/root.crl"] = crl(ca.root, ca.root_key)
    v = validator(ca.root, crls=crls)
    for _ in range(3):
        assert verdict(v, ca.signer(), (ca.intermediate,), crl_check=True) is Verdict.VALID
    assert sorted(crls.fetches) == [
        "http://crl.example.org/mail.crl",
        "http://crl.example.org/root.crl",
    ]


# ------------------------------------------------------------------ request parsing


def test_certificate_element_forms(ca: Authority) -> None:
    raw = der(ca.signer())
    text = E(ns.VALIDATECERT, "Certificate", text=base64.b64encode(raw).decode())
    wrapped = E(
        ns.VALIDATECERT,
        "Certificate",
        text="\n".join(base64.encodebytes(raw).decode().split("\n")),
    )
    opaque_der = E(ns.VALIDATECERT, "Certificate")
    set_opaque(opaque_der, raw)
    opaque_b64 = E(ns.VALIDATECERT, "Certificate")
    set_opaque(opaque_b64, base64.b64encode(raw))
    for el in (text, wrapped, opaque_der, opaque_b64):
        assert certificate_bytes(el) == raw
    # Raw DER is never stripped: its last byte may well be a whitespace value (0x0c, 0x20).
    for tail in (b"\x0c", b" ", b"\n", b"\t"):
        ending = E(ns.VALIDATECERT, "Certificate")
        set_opaque(ending, raw + tail)
        assert certificate_bytes(ending) == raw + tail


def test_every_verdict_has_a_status() -> None:
    assert set(STATUS) == set(Verdict)
    assert len(set(STATUS.values())) == len(STATUS)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=400) | st.text(max_size=200).map(str.encode))
def test_any_bytes_get_a_verdict_never_an_error(data: bytes) -> None:
    el = E(ns.VALIDATECERT, "Certificate")
    set_opaque(el, data)
    assert run(validator().validate(certificate_bytes(el), [data])) in set(Verdict)


# ------------------------------------------------------------------ configuration


def test_trust_store_setting_is_checked_at_load(tmp_path: Any, ca: Authority) -> None:
    from opush.config import ConfigError, load
    from opush.tap import certificate_validator
    from tests.support.config import STANDALONE, write_config

    def conf(extra: str) -> Any:
        files = dict(STANDALONE)
        files["opush.ini"] = files["opush.ini"] + extra
        return write_config(tmp_path / str(len(extra)), files)

    with pytest.raises(ConfigError) as missing:
        load(conf("smime.trust-store=missing.pem\n"), obm_conf=None)
    assert any(
        p.file == "opush.ini" and p.key == "smime.trust-store" and "cannot read" in p.message
        for p in missing.value.problems
    )
    (tmp_path / "junk.pem").write_text("not a certificate")
    with pytest.raises(ConfigError) as junk:
        load(conf(f"smime.trust-store={tmp_path / 'junk.pem'}\n"), obm_conf=None)
    assert any(p.key == "smime.trust-store" for p in junk.value.problems)

    (tmp_path / "ca.pem").write_bytes(pki.pem(ca.root, ca.intermediate))
    config = load(conf(f"smime.trust-store={tmp_path / 'ca.pem'}\n"), obm_conf=None)
    v = certificate_validator(config, reactor=None)
    assert v.anchor_count == 2


def test_an_unreadable_bundle_entry_does_not_cost_the_others(tmp_path: Any, ca: Authority) -> None:
    from opush.backends.pki import load_trust_store

    junk = b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n"
    (tmp_path / "bundle.pem").write_bytes(junk + pki.pem(ca.root) + junk)
    assert [c.subject for c in load_trust_store(tmp_path / "bundle.pem")] == [ca.root.subject]
    (tmp_path / "junk.pem").write_bytes(junk)
    with pytest.raises(ValueError):
        load_trust_store(tmp_path / "junk.pem")
