# mypy: disallow-untyped-calls=False
"""The console's SSH host key: read from ``<data-dir>/console_host_key``, generated there
(Ed25519, OpenSSH format, mode 0600) on the first start when absent.

Keeping it under data-dir means a package upgrade keeps the key, so admins' clients do not
see a changed host key.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ed25519
from twisted.conch.ssh.keys import FingerprintFormats, Key

from opush.log import logger

log = logger("CONTAINER")

HOST_KEY_NAME = "console_host_key"


def load_or_create_host_key(data_dir: Path) -> Key:
    """The private host key; a new one is written when the file does not exist yet.

    Called once at start, before the console listens (a small local file: no need for a
    thread).  A corrupt file is an error, never silently replaced: clients would see a
    different host key.
    """
    path = data_dir / HOST_KEY_NAME
    if path.exists():
        key: Key = Key.fromFile(str(path))
        return key
    data_dir.mkdir(parents=True, exist_ok=True)
    key = Key(ed25519.Ed25519PrivateKey.generate())
    text = key.toString("OPENSSH")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(text)
    public = path.with_name(HOST_KEY_NAME + ".pub")
    public.write_bytes(key.public().toString("OPENSSH") + b"\n")
    log.info(
        "Console SSH host key generated in {path} ({fingerprint})",
        path=str(path),
        fingerprint=host_key_fingerprint(key),
    )
    return key


def host_key_fingerprint(key: Key) -> str:
    """As ``ssh-keygen -lf`` and the ssh client print it: ``SHA256:...`` without padding."""
    text: str = key.fingerprint(FingerprintFormats.SHA256_BASE64)
    return "SHA256:" + text.rstrip("=")
