"""Key files and directory encodings, and the key cache in front of the directory."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from gateway.auth import (
    CachedKeyResolver,
    DirectoryKeyResolver,
    StaticKeyResolver,
    generate_private_key,
    load_private_key,
    load_private_key_pem,
    load_public_key_pem,
    private_key_to_pem,
    public_key_from_b64,
    public_key_to_b64,
    public_key_to_pem,
    save_private_key,
)

from .support import Clock, run


def _same_public(a: Ed25519PublicKey, b: Ed25519PublicKey) -> bool:
    return public_key_to_b64(a) == public_key_to_b64(b)


@pytest.mark.parametrize("password", [None, b"correct horse"])
def test_a_private_key_survives_a_pem_round_trip(password: bytes | None) -> None:
    key = generate_private_key()
    loaded = load_private_key_pem(private_key_to_pem(key, password), password)
    loaded.public_key().verify(key.sign(b"m"), b"m")  # raises if the keys differ
    key.public_key().verify(loaded.sign(b"m"), b"m")


def test_an_encrypted_key_needs_its_password() -> None:
    pem = private_key_to_pem(generate_private_key(), b"secret")
    with pytest.raises((TypeError, ValueError)):
        load_private_key_pem(pem)
    with pytest.raises(ValueError):
        load_private_key_pem(pem, b"wrong")


def test_a_saved_key_is_private_to_its_owner_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "bank-a.pem"
    key = generate_private_key()
    save_private_key(path, key)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert _same_public(load_private_key(path).public_key(), key.public_key())
    with pytest.raises(FileExistsError):
        save_private_key(path, generate_private_key())
    assert _same_public(load_private_key(path).public_key(), key.public_key())


def test_keys_of_another_type_are_refused() -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    pem = ec_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    with pytest.raises(ValueError, match="Ed25519"):
        load_private_key_pem(pem)
    pub_pem = ec_key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(ValueError, match="Ed25519"):
        load_public_key_pem(pub_pem)


def test_public_keys_round_trip_through_pem_and_directory_base64() -> None:
    key = generate_private_key()
    text = public_key_to_b64(key)
    assert len(base64.b64decode(text)) == 32
    assert _same_public(public_key_from_b64(text), key.public_key())
    assert _same_public(load_public_key_pem(public_key_to_pem(key.public_key())), key.public_key())


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not base64!",
        base64.b64encode(b"\x01" * 31).decode(),
        base64.b64encode(b"\x01" * 33).decode(),
    ],
)
def test_a_directory_key_that_is_not_32_bytes_of_base64_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        public_key_from_b64(text)


class CountingResolver(StaticKeyResolver):
    def __init__(self, keys: dict[str, Ed25519PublicKey]) -> None:
        super().__init__(keys)
        self.lookups: list[str] = []

    async def public_key(self, key_id: str) -> Ed25519PublicKey | None:
        self.lookups.append(key_id)
        return await super().public_key(key_id)


def test_the_key_cache_asks_the_directory_once_per_ttl_known_or_not() -> None:
    key = generate_private_key().public_key()
    inner, clock = CountingResolver({"bank-a": key}), Clock()
    cached = CachedKeyResolver(inner, clock=clock, ttl_s=60)

    async def scenario() -> None:
        for _ in range(3):
            assert await cached.public_key("bank-a") is key
            assert await cached.public_key("nobody") is None
        clock.now += 61
        assert await cached.public_key("bank-a") is key
        cached.forget("bank-a")
        assert await cached.public_key("bank-a") is key

    run(scenario())
    assert inner.lookups == ["bank-a", "nobody", "bank-a", "bank-a"]


def test_the_key_cache_is_bounded() -> None:
    inner = CountingResolver({})
    cached = CachedKeyResolver(inner, clock=Clock(), entries_max=3)

    async def scenario() -> None:
        for i in range(10):
            await cached.public_key(f"bank-{i}")
        await cached.public_key("bank-9")  # still cached
        await cached.public_key("bank-0")  # evicted long ago

    run(scenario())
    assert len(cached._entries) == 3
    assert inner.lookups[-1] == "bank-0" and inner.lookups.count("bank-9") == 1


def test_directory_keys_follow_the_directory_text() -> None:
    old, new = generate_private_key().public_key(), generate_private_key().public_key()
    directory: dict[str, str] = {"bank-a": public_key_to_b64(old), "bank-x": "not a key"}
    resolver = DirectoryKeyResolver(directory.get)

    async def lookups() -> list[Ed25519PublicKey | None]:
        first = await resolver.public_key("bank-a")
        directory["bank-a"] = public_key_to_b64(new)  # key rotated in the directory
        return [
            first,
            await resolver.public_key("bank-a"),
            await resolver.public_key("bank-x"),
            await resolver.public_key("nobody"),
        ]

    first, rotated, broken, unknown = run(lookups())
    assert first is not None and _same_public(first, old)
    assert rotated is not None and _same_public(rotated, new)
    assert broken is None and unknown is None
