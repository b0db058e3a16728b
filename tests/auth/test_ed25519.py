"""libsodium's Ed25519 (gateway.ed25519) against OpenSSL's (cryptography) as the reference."""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import ed25519

seeds = st.binary(min_size=32, max_size=32)
messages = st.binary(max_size=2_048)


def _openssl_accepts(key: Ed25519PublicKey, signature: bytes, data: bytes) -> bool:
    try:
        key.verify(signature, data)
    except InvalidSignature:
        return False
    return True


@settings(max_examples=200)
@given(seed=seeds, data=messages)
def test_signatures_are_openssls_and_verify_both_ways(seed: bytes, data: bytes) -> None:
    key = Ed25519PrivateKey.from_private_bytes(seed)
    signature = ed25519.sign(key, data)
    assert signature == key.sign(data)  # RFC 8032 signatures are deterministic
    assert ed25519.verify(key.public_key(), key.sign(data), data)
    assert _openssl_accepts(key.public_key(), signature, data)


@settings(max_examples=300)
@given(
    seed=seeds,
    data=messages,
    flip=st.integers(min_value=0, max_value=64 * 8 - 1),
    other=st.binary(max_size=64),
    where=st.sampled_from(["signature", "data", "key", "length"]),
)
def test_a_changed_signature_message_or_key_is_refused_as_openssl_refuses_it(
    seed: bytes, data: bytes, flip: int, other: bytes, where: str
) -> None:
    key = Ed25519PrivateKey.from_private_bytes(seed)
    public = key.public_key()
    signature = key.sign(data)
    if where == "signature":
        changed = bytearray(signature)
        changed[flip // 8] ^= 1 << (flip % 8)
        signature = bytes(changed)
    elif where == "data":
        data = data + other if other else data + b"\x00"
    elif where == "key":
        public = Ed25519PrivateKey.from_private_bytes(bytes(reversed(seed))).public_key()
        if public.public_bytes_raw() == key.public_key().public_bytes_raw():
            return
    else:
        signature = signature[: len(other)] if len(other) != 64 else signature + b"\x00"
    assert ed25519.verify(public, signature, data) is False
    assert _openssl_accepts(public, signature, data) is False


def test_the_signing_key_cache_stays_bounded() -> None:
    keys = [Ed25519PrivateKey.generate() for _ in range(ed25519.SECRET_KEYS_MAX + 3)]
    for k in keys:
        assert ed25519.verify(k.public_key(), ed25519.sign(k, b"m"), b"m")
    assert len(ed25519._secret_keys) <= ed25519.SECRET_KEYS_MAX
