"""A small certification authority for ValidateCert tests: root, intermediate, S/MIME
signers, CRLs, all made with ``cryptography`` (EC P-256 keys: fast to generate)."""

from __future__ import annotations

import datetime
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = datetime.datetime(2026, 11, 22, 12, 0, tzinfo=datetime.UTC)
DAY = datetime.timedelta(days=1)

Key = ec.EllipticCurvePrivateKey


def key() -> Key:
    return ec.generate_private_key(ec.SECP256R1())


def name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "opush tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def certificate(
    subject: str,
    subject_key: Key,
    issuer: x509.Certificate | None = None,
    issuer_key: Key | None = None,
    *,
    ca: bool | None = False,
    not_before: datetime.datetime = NOW - 30 * DAY,
    not_after: datetime.datetime = NOW + 365 * DAY,
    key_usage: str | None = "sign",
    eku: Sequence[x509.ObjectIdentifier] | None = (ExtendedKeyUsageOID.EMAIL_PROTECTION,),
    email: str | None = None,
    crl_url: str | None = None,
    serial: int | None = None,
) -> x509.Certificate:
    """A certificate; self-signed when ``issuer`` is None.  ``ca``: True a CA, False an
    end entity, None no basicConstraints at all.  ``key_usage``: "sign" (digitalSignature,
    nonRepudiation), "ca" (keyCertSign, cRLSign), "encrypt" (keyEncipherment only), None."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(name(subject))
        .issuer_name(issuer.subject if issuer is not None else name(subject))
        .public_key(subject_key.public_key())
        .serial_number(serial if serial is not None else x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    if ca is not None:
        builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=None), True)
    usages = {
        "sign": dict(digital_signature=True, content_commitment=True),
        "ca": dict(key_cert_sign=True, crl_sign=True),
        "encrypt": dict(key_encipherment=True),
    }
    if key_usage is not None:
        flags = {
            "digital_signature": False,
            "content_commitment": False,
            "key_encipherment": False,
            "data_encipherment": False,
            "key_agreement": False,
            "key_cert_sign": False,
            "crl_sign": False,
            "encipher_only": False,
            "decipher_only": False,
            **usages[key_usage],
        }
        builder = builder.add_extension(x509.KeyUsage(**flags), True)
    if eku is not None and not ca:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), False)
    if email is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.RFC822Name(email)]), False
        )
    if crl_url is not None:
        builder = builder.add_extension(
            x509.CRLDistributionPoints(
                [
                    x509.DistributionPoint(
                        [x509.UniformResourceIdentifier(crl_url)], None, None, None
                    )
                ]
            ),
            False,
        )
    return builder.sign(issuer_key if issuer_key is not None else subject_key, hashes.SHA256())


def crl(
    issuer: x509.Certificate,
    issuer_key: Key,
    revoked: Sequence[int] = (),
    next_update: datetime.datetime = NOW + 7 * DAY,
) -> bytes:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.subject)
        .last_update(NOW - DAY)
        .next_update(next_update)
    )
    for serial in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(NOW - DAY)
            .build()
        )
    return builder.sign(issuer_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


class Authority:
    """Root -> intermediate, and helpers to issue signers under the intermediate."""

    def __init__(self, crl_base: str | None = None) -> None:
        self.root_key = key()
        self.root = certificate("Test Root CA", self.root_key, ca=True, key_usage="ca")
        self.inter_key = key()
        self.intermediate = certificate(
            "Test Mail CA",
            self.inter_key,
            self.root,
            self.root_key,
            ca=True,
            key_usage="ca",
            crl_url=f"{crl_base}/root.crl" if crl_base else None,
        )
        self.crl_base = crl_base

    def signer(self, email: str = "alice@example.org", **kw: object) -> x509.Certificate:
        kw.setdefault("crl_url", f"{self.crl_base}/mail.crl" if self.crl_base else None)
        return certificate(
            email,
            key(),
            self.intermediate,
            self.inter_key,
            email=email,
            **kw,  # type: ignore[arg-type]
        )
