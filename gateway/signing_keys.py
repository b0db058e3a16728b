"""The gateway's own Ed25519 key, which signs settlement manifests.

Kept as PKCS#8 PEM under `$BAYGATE_DATA_DIR/keys/`, readable by the owner only (0600, folder
0700), with the public half beside it for distribution to participants. The key is created on
first use; creation writes a temporary file and hard-links it into place, so two processes
starting together end up with the same key instead of one overwriting the other's. A private
key readable by group or others is refused rather than used, as ssh does.
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

PRIVATE_NAME = "gateway_ed25519.pem"
PUBLIC_NAME = "gateway_ed25519.pub.pem"
KEY_FILE_BYTES_MAX = 16 * 1024


class SigningKeyError(Exception):
    """The key file exists but cannot be trusted or read (bad mode, not an Ed25519 key)."""


def keys_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "keys"


def load_or_create_signing_key(data_dir: Path) -> Ed25519PrivateKey:
    """The gateway's signing key, created (0600) on first call."""
    folder = keys_dir(data_dir)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / PRIVATE_NAME
    if not path.exists():
        _create(path)
    key = _load_private(path)
    _write_public(folder / PUBLIC_NAME, key.public_key())
    return key


def load_public_key(data_dir: Path) -> Ed25519PublicKey:
    """The gateway's public key, from the public PEM (or the private key when only it exists)."""
    folder = keys_dir(data_dir)
    pub = folder / PUBLIC_NAME
    if pub.exists():
        return public_key_from_pem(_read_limited(pub))
    return _load_private(folder / PRIVATE_NAME).public_key()


def public_key_from_pem(data: bytes) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise SigningKeyError(f"not a PEM public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError("public key is not Ed25519")
    return key


def public_key_raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_key_b64(key: Ed25519PublicKey) -> str:
    return base64.b64encode(public_key_raw(key)).decode()


def public_key_from_b64(text: str) -> Ed25519PublicKey:
    try:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))
    except ValueError as exc:
        raise SigningKeyError(f"not a raw Ed25519 public key: {exc}") from None


def key_id(key: Ed25519PublicKey) -> str:
    """A short fingerprint to name the key in manifests and logs: SHA-256 of the raw key."""
    return "ed25519:" + hashlib.sha256(public_key_raw(key)).hexdigest()[:32]


def _create(path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)  # atomic, and fails if another process won the race
        except FileExistsError:
            pass
    finally:
        tmp.unlink(missing_ok=True)


def _load_private(path: Path) -> Ed25519PrivateKey:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise SigningKeyError(f"{path}: no signing key") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SigningKeyError(f"{path}: mode {stat.S_IMODE(mode):o} lets others read it; use 600")
    try:
        key = serialization.load_pem_private_key(_read_limited(path), password=None)
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(f"{path}: not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{path}: not an Ed25519 key")
    return key


def _read_limited(path: Path) -> bytes:
    with open(path, "rb") as f:
        data = f.read(KEY_FILE_BYTES_MAX + 1)
    if len(data) > KEY_FILE_BYTES_MAX:
        raise SigningKeyError(f"{path}: larger than {KEY_FILE_BYTES_MAX} bytes")
    return data


def _write_public(path: Path, key: Ed25519PublicKey) -> None:
    pem = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if path.exists() and _read_limited(path) == pem:
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}")
    tmp.write_bytes(pem)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
