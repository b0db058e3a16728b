"""The gateway's signing key: created once, owner-only, refused when others can read it."""

from __future__ import annotations

import stat
import threading

import pytest

from gateway import signing_keys as sk


def test_key_is_created_owner_only_and_reloaded(tmp_path) -> None:
    key = sk.load_or_create_signing_key(tmp_path)
    path = tmp_path / "keys" / sk.PRIVATE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    again = sk.load_or_create_signing_key(tmp_path)
    assert sk.public_key_raw(again.public_key()) == sk.public_key_raw(key.public_key())
    assert sk.public_key_raw(sk.load_public_key(tmp_path)) == sk.public_key_raw(key.public_key())
    assert sk.key_id(key.public_key()).startswith("ed25519:")


def test_racing_first_use_ends_with_one_key(tmp_path) -> None:
    barrier = threading.Barrier(4)
    keys: list[bytes] = []

    def start() -> None:
        barrier.wait()
        keys.append(sk.public_key_raw(sk.load_or_create_signing_key(tmp_path).public_key()))

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(keys)) == 1
    assert [p.name for p in (tmp_path / "keys").iterdir() if p.name.startswith(".")] == []


def test_key_readable_by_others_is_refused(tmp_path) -> None:
    sk.load_or_create_signing_key(tmp_path)
    (tmp_path / "keys" / sk.PRIVATE_NAME).chmod(0o644)
    with pytest.raises(sk.SigningKeyError, match="600"):
        sk.load_or_create_signing_key(tmp_path)


def test_non_ed25519_public_key_is_refused() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(sk.SigningKeyError):
        sk.public_key_from_pem(pem)


def test_corrupt_key_file_is_refused(tmp_path) -> None:
    (tmp_path / "keys").mkdir(mode=0o700)
    path = tmp_path / "keys" / sk.PRIVATE_NAME
    path.write_bytes(b"-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")
    path.chmod(0o600)
    with pytest.raises(sk.SigningKeyError):
        sk.load_or_create_signing_key(tmp_path)
