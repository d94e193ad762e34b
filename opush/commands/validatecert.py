"""ValidateCert (MS-ASCMD 2.2.1.22): is the certificate of a signed mail's sender good?

The checks are ``opush.backends.pki``'s; this module reads the request and maps verdicts to
the per-certificate statuses of MS-ASCMD 2.2.3.177.18:

1 valid, 3 the signature cannot be validated, 4 untrusted source, 5 badly built chain,
6 not valid for signing mail, 7 expired or not yet valid, 8 a chain certificate is outside
its validity, 10 missing or incorrect information (unreadable certificate), 11 a chain
certificate is not a certification authority, 13 revoked, 14 the revocation server cannot
be contacted, 15 a chain certificate is revoked, 16 the revocation status cannot be
determined, 17 server error.  The top-level Status is 1 when the request could be read
(each certificate then has its own), 2 when it could not.
"""

from __future__ import annotations

import base64
import binascii

from lxml.etree import _Element

from opush.backends.pki import CertificateValidator, Verdict
from opush.commands.context import CommandContext, CommandResult
from opush.log import logger
from opush.wbxml import E, ns, opaque

log = logger("opush.commands.validatecert")

VC = ns.VALIDATECERT
SUCCESS = 1
PROTOCOL_ERROR = 2
SERVER_ERROR = 17

STATUS: dict[Verdict, int] = {
    Verdict.VALID: 1,
    Verdict.BAD_SIGNATURE: 3,
    Verdict.UNTRUSTED: 4,
    Verdict.BAD_CHAIN: 5,
    Verdict.NOT_FOR_SIGNING: 6,
    Verdict.EXPIRED: 7,
    Verdict.CHAIN_EXPIRED: 8,
    Verdict.MALFORMED: 10,
    Verdict.CA_ROLE: 11,
    Verdict.REVOKED: 13,
    Verdict.REVOCATION_OFFLINE: 14,
    Verdict.CHAIN_REVOKED: 15,
    Verdict.REVOCATION_UNKNOWN: 16,
}


def _q(tag: str) -> str:
    return f"{{{VC}}}{tag}"


def certificate_bytes(el: _Element) -> bytes:
    """The DER (or PEM) bytes of a ``Certificate`` element.

    MS-ASCMD 2.2.3.19.1: the certificate is base64 text; some clients send it as OPAQUE,
    either still base64 or as raw DER, so all three are accepted."""
    data = opaque(el)
    text = data.strip()
    if text.startswith(b"-----BEGIN"):
        return text  # PEM
    try:
        decoded = base64.b64decode(b"".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        return data  # raw DER (never stripped: its last bytes may be whitespace values)
    return decoded if decoded[:1] == b"\x30" else data


def _answer(status: int, statuses: list[int] | None = None) -> CommandResult:
    root = E(VC, "ValidateCert", E(VC, "Status", text=status))
    for s in statuses or []:
        root.append(E(VC, "Certificate", E(VC, "Status", text=s)))
    return CommandResult(root)


async def handle(ctx: CommandContext, request: _Element | None) -> CommandResult:
    if request is None or request.tag != _q("ValidateCert"):
        return _answer(PROTOCOL_ERROR)
    certificates = request.findall(f"{_q('Certificates')}/{_q('Certificate')}")
    if not certificates:
        return _answer(PROTOCOL_ERROR)
    chain = [
        certificate_bytes(c)
        for c in request.findall(f"{_q('CertificateChain')}/{_q('Certificate')}")
    ]
    check_crl = (request.findtext(_q("CheckCRL")) or "0").strip() == "1"
    validator: CertificateValidator | None = ctx.runtime.services.get("validatecert")
    statuses: list[int] = []
    for el in certificates:
        if validator is None:
            statuses.append(SERVER_ERROR)
            continue
        try:
            verdict = await validator.validate(certificate_bytes(el), chain, check_crl)
        except Exception:
            log.failure("ValidateCert: validation failed")
            statuses.append(SERVER_ERROR)
            continue
        statuses.append(STATUS[verdict])
    log.info(
        "ValidateCert: {count} certificate(s), CheckCRL {crl}: statuses {statuses}",
        count=len(statuses),
        crl=int(check_crl),
        statuses=statuses,
    )
    return _answer(SUCCESS, statuses)
