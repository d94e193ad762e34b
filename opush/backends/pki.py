"""S/MIME certificate validation for ValidateCert (MS-ASCMD 2.2.1.22).

A phone that receives a signed mail asks the server whether the signer's certificate is
good: the device has neither the organisation's trusted authorities nor a way to reach
revocation lists.  This module answers in X.509 terms (RFC 5280 path building and checks,
RFC 8550/8551 S/MIME usages); ``opush.commands.validatecert`` turns the verdicts into EAS
status codes.

- Trust anchors: a PEM file (opush.ini ``smime.trust-store``, else the system bundle).
- Path: from the certificate through the ``CertificateChain`` the device sent and the
  anchors, each link's signature verified; a certificate that is itself an anchor is
  trusted as is.
- Checks: validity dates of the certificate and of its chain, CA role of every issuer
  (basicConstraints cA, keyCertSign), signing usages of the certificate (digitalSignature or
  nonRepudiation; emailProtection when it names extended usages).
- Revocation: CRLs named by the certificates' HTTP distribution points, fetched with a
  timeout, signature-checked against the issuer, cached until their nextUpdate.  With
  ``CheckCRL`` unset a revocation status that cannot be established is ignored (the spec's
  SHOULD); a certificate found on a CRL is always refused.
"""

from __future__ import annotations

import datetime
import enum
import re
import warnings
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtendedKeyUsageOID

from opush.log import logger

log = logger("opush.backends.pki")

#: The system's bundle of trusted authorities (Debian's ca-certificates).
SYSTEM_TRUST_STORE = Path("/etc/ssl/certs/ca-certificates.crt")
#: Longest path accepted (leaf, intermediates, anchor); deeper chains are refused as badly
#: built rather than walked forever.
MAX_DEPTH = 10


class Verdict(enum.Enum):
    """Why a certificate is (not) good for verifying a signed mail."""

    VALID = "valid"
    MALFORMED = "malformed"  # not a certificate, or one we cannot read
    BAD_SIGNATURE = "bad-signature"  # its issuer's key does not verify it
    UNTRUSTED = "untrusted"  # no path to a trusted authority
    BAD_CHAIN = "bad-chain"  # a path exists but is badly formed (loop, too long, bad link)
    EXPIRED = "expired"  # the certificate itself is outside its validity
    CHAIN_EXPIRED = "chain-expired"  # an issuer is outside its validity
    CA_ROLE = "ca-role"  # an issuer is not a certification authority
    NOT_FOR_SIGNING = "not-for-signing"  # its usages exclude signing mail
    REVOKED = "revoked"
    CHAIN_REVOKED = "chain-revoked"
    REVOCATION_OFFLINE = "revocation-offline"  # its CRL could not be fetched
    REVOCATION_UNKNOWN = "revocation-unknown"  # no CRL to consult, or a stale/invalid one


class CrlUnavailable(Exception):
    """A CRL could not be fetched (server down, HTTP error, timeout)."""


#: ``url -> DER or PEM bytes of the CRL``; raises CrlUnavailable.
CrlFetcher = Callable[[str], Awaitable[bytes]]


def load_certificate(data: bytes) -> x509.Certificate:
    """A certificate from DER or PEM bytes; ValueError if it is neither."""
    if data.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_certificate(data)
    return x509.load_der_x509_certificate(data)


_PEM_BLOCK = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)


def load_trust_store(path: Path) -> list[x509.Certificate]:
    """Every readable certificate of a PEM bundle (one unreadable entry, e.g. an old root
    that newer cryptography refuses, does not cost the others); ValueError when none is."""
    data = path.read_bytes()
    certs: list[x509.Certificate] = []
    skipped = 0
    for block in _PEM_BLOCK.findall(data):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # e.g. negative serial numbers of old roots
                certs.append(x509.load_pem_x509_certificate(block))
        except ValueError:
            skipped += 1
    if not certs:
        raise ValueError(f"{path}: no PEM certificate could be read")
    if skipped:
        log.warn("{path}: {n} unreadable certificate(s) skipped", path=str(path), n=skipped)
    return certs


@attrs.define
class _Crl:
    crl: x509.CertificateRevocationList
    until: datetime.datetime | None


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class CertificateValidator:
    """Validates S/MIME signing certificates against a set of trust anchors."""

    def __init__(
        self,
        anchors: Sequence[x509.Certificate],
        fetch_crl: CrlFetcher | None = None,
        now: Callable[[], datetime.datetime] = _now,
        crl_cache_size: int = 256,
    ) -> None:
        self._anchors: dict[bytes, list[x509.Certificate]] = {}
        self._anchor_ders: set[bytes] = set()
        for a in anchors:
            self._anchors.setdefault(a.subject.public_bytes(), []).append(a)
            self._anchor_ders.add(_der(a))
        self._fetch_crl = fetch_crl
        self._now = now
        self._crls: dict[str, _Crl] = {}
        self._crl_cache_size = crl_cache_size

    @property
    def anchor_count(self) -> int:
        return len(self._anchor_ders)

    async def validate(
        self, certificate: bytes, chain: Sequence[bytes] = (), check_crl: bool = False
    ) -> Verdict:
        """The verdict on ``certificate`` (DER or PEM), helped by the ``chain`` the device
        sent (unreadable chain entries are skipped: the path may not need them)."""
        try:
            leaf = load_certificate(certificate)
            _ = leaf.subject, leaf.issuer, leaf.not_valid_after_utc
        except (ValueError, TypeError) as e:
            log.info("ValidateCert: unreadable certificate: {error}", error=str(e))
            return Verdict.MALFORMED
        pool: list[x509.Certificate] = []
        for raw in chain:
            try:
                pool.append(load_certificate(raw))
            except (ValueError, TypeError):
                continue
        now = self._now()
        if not _within(leaf, now):
            return Verdict.EXPIRED
        path_or_verdict = self._path(leaf, pool)
        if isinstance(path_or_verdict, Verdict):
            return path_or_verdict
        path = path_or_verdict
        for issuer in path[1:]:
            if _der(issuer) in self._anchor_ders and issuer is path[-1]:
                continue  # anchors are trusted as configured (old roots lack extensions)
            if not _is_ca(issuer):
                return Verdict.CA_ROLE
        for issuer in path[1:]:
            if not _within(issuer, now):
                return Verdict.CHAIN_EXPIRED
        if not _signs_mail(leaf):
            return Verdict.NOT_FOR_SIGNING
        return await self._revocation(path, check_crl, now)

    # ------------------------------------------------------------------ path building

    def _path(
        self, leaf: x509.Certificate, pool: Sequence[x509.Certificate]
    ) -> list[x509.Certificate] | Verdict:
        """leaf .. anchor, each verified by the next; or why there is none."""
        path = [leaf]
        seen = {_der(leaf)}
        current = leaf
        for _ in range(MAX_DEPTH):
            if _der(current) in self._anchor_ders:
                return path
            key = current.issuer.public_bytes()
            anchors = self._anchors.get(key, [])
            candidates = anchors + [c for c in pool if c.subject.public_bytes() == key]
            candidates = [c for c in candidates if _der(c) != _der(current)]
            if not candidates:
                return Verdict.UNTRUSTED
            verified = [c for c in candidates if _issued_by(current, c)]
            if not verified:
                if all(_der(c) in self._anchor_ders for c in candidates):
                    # Only a trusted authority of the same name, which did not sign it.
                    return Verdict.UNTRUSTED
                # The device's issuer does not verify this certificate.
                return Verdict.BAD_SIGNATURE if current is leaf else Verdict.BAD_CHAIN
            nxt = next((c for c in verified if _der(c) in self._anchor_ders), verified[0])
            if _der(nxt) in seen:
                return Verdict.BAD_CHAIN
            seen.add(_der(nxt))
            path.append(nxt)
            current = nxt
        return Verdict.BAD_CHAIN

    # ------------------------------------------------------------------ revocation

    async def _revocation(
        self, path: Sequence[x509.Certificate], check_crl: bool, now: datetime.datetime
    ) -> Verdict:
        """MS-ASCMD 2.2.3.26 CheckCRL: when 1 an unverifiable revocation status fails the
        certificate; when 0 it is ignored, but a revocation that is known always counts."""
        doubt: Verdict | None = None
        for i, cert in enumerate(path[:-1]):
            issuer = path[i + 1]
            revoked, uncertain = await self._revoked(cert, issuer, now)
            if revoked:
                return Verdict.REVOKED if i == 0 else Verdict.CHAIN_REVOKED
            if uncertain is not None and doubt is None:
                doubt = uncertain
        if doubt is not None and check_crl:
            return doubt
        return Verdict.VALID

    async def _revoked(
        self, cert: x509.Certificate, issuer: x509.Certificate, now: datetime.datetime
    ) -> tuple[bool, Verdict | None]:
        urls = _crl_urls(cert)
        if not urls or self._fetch_crl is None:
            return False, Verdict.REVOCATION_UNKNOWN
        offline = False
        for url in urls:
            try:
                crl = await self._crl(url, now)
            except CrlUnavailable as e:
                log.info("ValidateCert: CRL {url} unavailable: {error}", url=url, error=str(e))
                offline = True
                continue
            if crl is None:
                continue
            if crl.issuer != issuer.subject or not _crl_signed_by(crl, issuer):
                log.info("ValidateCert: CRL {url} is not signed by the issuer", url=url)
                continue
            nxt = crl.next_update_utc
            if nxt is not None and nxt < now:
                log.info("ValidateCert: CRL {url} is stale (nextUpdate {n})", url=url, n=nxt)
                continue
            return crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None, (
                None
            )
        return False, Verdict.REVOCATION_OFFLINE if offline else Verdict.REVOCATION_UNKNOWN

    async def _crl(self, url: str, now: datetime.datetime) -> x509.CertificateRevocationList | None:
        cached = self._crls.get(url)
        if cached is not None and (cached.until is None or cached.until > now):
            return cached.crl
        assert self._fetch_crl is not None
        data = await self._fetch_crl(url)
        try:
            if data.lstrip().startswith(b"-----BEGIN"):
                crl = x509.load_pem_x509_crl(data)
            else:
                crl = x509.load_der_x509_crl(data)
        except ValueError as e:
            log.info("ValidateCert: CRL {url} is unreadable: {error}", url=url, error=str(e))
            return None
        if len(self._crls) >= self._crl_cache_size:
            self._crls.pop(next(iter(self._crls)))
        # Without nextUpdate the CRL is good for this request only.
        until = crl.next_update_utc
        self._crls[url] = _Crl(crl, until if until is not None else now)
        return crl


# ---------------------------------------------------------------------- X.509 helpers


def _der(cert: x509.Certificate) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    return cert.public_bytes(Encoding.DER)


def _within(cert: x509.Certificate, now: datetime.datetime) -> bool:
    return cert.not_valid_before_utc <= now <= cert.not_valid_after_utc


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _ext(cert: x509.Certificate | x509.CertificateRevocationList, kind: type[Any]) -> Any:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None
    except ValueError:  # a malformed extension: treat as absent, the checks then refuse
        return None


def _is_ca(cert: x509.Certificate) -> bool:
    """RFC 5280 4.2.1.9/4.2.1.3: an issuer must be a CA, and may sign certificates."""
    bc = _ext(cert, x509.BasicConstraints)
    if bc is None or not bc.ca:
        return False
    ku = _ext(cert, x509.KeyUsage)
    return ku is None or bool(ku.key_cert_sign)


def _signs_mail(cert: x509.Certificate) -> bool:
    """RFC 8550 4.4.2/4.4.4: a signing certificate has digitalSignature or
    nonRepudiation when it lists key usages, and emailProtection (or any) when it lists
    extended key usages."""
    ku = _ext(cert, x509.KeyUsage)
    if ku is not None and not (ku.digital_signature or ku.content_commitment):
        return False
    eku = _ext(cert, x509.ExtendedKeyUsage)
    if eku is not None:
        usages = set(eku)
        if not usages & {
            ExtendedKeyUsageOID.EMAIL_PROTECTION,
            ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,
        }:
            return False
    return True


def _crl_urls(cert: x509.Certificate) -> list[str]:
    cdp = _ext(cert, x509.CRLDistributionPoints)
    if cdp is None:
        return []
    urls = []
    for point in cdp:
        for name in point.full_name or ():
            if isinstance(name, x509.UniformResourceIdentifier) and name.value.lower().startswith(
                ("http://", "https://")
            ):
                urls.append(name.value)
    return urls


def _crl_signed_by(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> bool:
    try:
        return bool(crl.is_signature_valid(issuer.public_key()))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


# ---------------------------------------------------------------------- CRL over HTTP


def http_crl_fetcher(reactor: Any, timeout: float, max_size: int = 10 * 1024 * 1024) -> CrlFetcher:
    """Fetch CRLs with Twisted's Agent; any failure is CrlUnavailable."""
    from twisted.internet.defer import Deferred
    from twisted.web.client import Agent

    from opush.backends.obmsync.transport import _read_body

    agent = Agent(reactor, connectTimeout=timeout)  # type: ignore[no-untyped-call]

    async def fetch(url: str) -> bytes:
        d: Deferred[Any] = agent.request(b"GET", url.encode("ascii", "replace"))
        d.addTimeout(timeout, reactor)
        try:
            response = await d
            if response.code != 200:
                raise CrlUnavailable(f"HTTP {response.code}")
            if response.length is not None and isinstance(response.length, int):
                if response.length > max_size:
                    raise CrlUnavailable(f"CRL larger than {max_size} bytes")
            body: Deferred[bytes] = _read_body(response)
            body.addTimeout(timeout, reactor)
            data = await body
        except CrlUnavailable:
            raise
        except Exception as e:  # connection refused, DNS, timeout, TLS...
            raise CrlUnavailable(f"{type(e).__name__}: {e}") from e
        if len(data) > max_size:
            raise CrlUnavailable(f"CRL larger than {max_size} bytes")
        return data

    return fetch
