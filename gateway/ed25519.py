"""Ed25519 signing and verification through libsodium (PyNaCl).

Keys stay `cryptography` objects everywhere (loading, PEM, the directory, the RFC 9421
library); only the two hot operations go through libsodium, which does them in about half
the time of the OpenSSL build `cryptography` ships with on the machines measured here
(`python -m bench.run auth`: `ed25519_verify_us` against `libsodium_verify_us`). Both
implement RFC 8032; a signature made by either verifies with the other
(tests/auth/test_ed25519.py), and libsodium refuses what OpenSSL refuses (non-canonical
S, a wrong length) and also small-order keys and points, which no honest signer makes.

libsodium signs with the 64-byte secret key (seed and public key), derived once per key
and kept in a bounded cache.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from nacl.bindings import crypto_sign, crypto_sign_open, crypto_sign_seed_keypair
from nacl.exceptions import BadSignatureError, CryptoError

SIGNATURE_BYTES = 64
SECRET_KEYS_MAX = 1_024  # signing keys a process uses: the gateway's and a simulator's own

_secret_keys: dict[bytes, bytes] = {}


def verify(key: Ed25519PublicKey, signature: bytes, data: bytes) -> bool:
    """True when `signature` is `key`'s Ed25519 signature of `data`."""
    if len(signature) != SIGNATURE_BYTES:
        return False
    try:
        crypto_sign_open(signature + data, key.public_bytes_raw())
    except (BadSignatureError, CryptoError, ValueError):
        return False
    return True


def sign(key: Ed25519PrivateKey, data: bytes) -> bytes:
    """`key`'s Ed25519 signature of `data` (deterministic: the same as `key.sign(data)`)."""
    seed = key.private_bytes_raw()
    secret = _secret_keys.get(seed)
    if secret is None:
        if len(_secret_keys) >= SECRET_KEYS_MAX:
            _secret_keys.clear()
        secret = _secret_keys[seed] = crypto_sign_seed_keypair(seed)[1]
    return crypto_sign(data, secret)[:SIGNATURE_BYTES]
