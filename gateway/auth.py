"""Request authentication: HTTP Message Signatures (RFC 9421) with Ed25519 participant keys.

Every request to Baygate, and every delivery Baygate makes, carries one signature whose key
id is the participant id. The signature covers "@method", "@path", "@query" when the target
has a query, "content-digest" (RFC 9530, sha-256 of the body), "content-type" when the
request has one, and the `created` time. See docs/decisions/0005-request-signatures.md.

Theory of operation of `Verifier.verify`, cheapest refusal first, so that junk costs little
and nothing unauthenticated reaches the key store or the replay memory:
  1. both Signature-Input and Signature present, within size limits, one label each;
  2. parameters well typed (keyid a participant id, created an integer, alg ed25519 if given);
  3. coverage includes every required component and nothing the verifier cannot reproduce;
  4. created within [now - max_age_s - clock_skew_s, now + clock_skew_s] (injected clock);
  5. signature not already seen (replay);
  6. key id known to the resolver;
  7. Content-Digest well formed and equal to the digest of the body;
  8. the signature itself (Ed25519 over the signature base: built here for Baygate's own
     component profile, by http-message-signatures for anything else);
  9. the signature is remembered until it would be stale anyway, unless the memory is full.
Every refusal is an `AuthError` carrying an HTTP status and an RFC 9457 problem; nothing
else escapes for a bad request.

Framework-light: no aiohttp here. An aiohttp middleware passes `request.method`,
`request.raw_path` (the target exactly as sent, with its query), `request.headers` and the
body bytes.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import os
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import http_sf
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from http_message_signatures import (
    ContentDigest,
    HTTPMessageSignaturesException,
    HTTPMessageSigner,
    HTTPMessageVerifier,
    HTTPSignatureKeyResolver,
    InvalidSignature,
    algorithms,
)

from gateway import ed25519
from gateway.replay import AddResult, ReplayCache, replay_key

SIGNATURE_LABEL = "sig1"
ALGORITHM = "ed25519"
# Participant ids as constrained by the directory (migrations/0001_directory.sql).
KEY_ID_RE = re.compile(r"[a-z0-9][a-z0-9._-]{1,63}")
# Signed requests name no authority: behind TLS termination the verifier cannot know the
# authority or scheme the client used, so components built from them are refused.
DERIVED_ALLOWED = frozenset({"@method", "@path", "@query", "@query-param", "@request-target"})
SIGNATURE_HEADER_BYTES_MAX = 4096
COMPONENTS_MAX = 16
PUBLIC_KEY_BYTES = 32
# The verifier rebuilds an absolute URL from the request target; this origin is never
# covered (see DERIVED_ALLOWED), so its value does not reach any signature base.
_PLACEHOLDER_ORIGIN = "http://baygate.invalid"
_PROBLEM_PREFIX = "urn:baygate:problem:"


class AuthError(Exception):
    """A request refused by authentication: an HTTP status and an RFC 9457 problem."""

    def __init__(
        self, status: int, problem_type: str, title: str, detail: str, retry_after_s: int = 0
    ) -> None:
        super().__init__(f"{status} {title}: {detail}")
        self.status = status
        self.problem_type = problem_type
        self.title = title
        self.detail = detail
        self.retry_after_s = retry_after_s

    def problem(self) -> dict[str, Any]:
        return {
            "type": self.problem_type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)} if self.retry_after_s else {}


def _refuse(kind: str, title: str, detail: str) -> AuthError:
    return AuthError(401, _PROBLEM_PREFIX + kind, title, detail)


class KeyResolver(Protocol):
    async def public_key(self, key_id: str) -> Ed25519PublicKey | None: ...


class StaticKeyResolver:
    """Keys held in memory: tests, simulators, and deployments with a fixed participant set."""

    def __init__(self, keys: Mapping[str, Ed25519PublicKey]) -> None:
        self._keys = dict(keys)

    async def public_key(self, key_id: str) -> Ed25519PublicKey | None:
        return self._keys.get(key_id)


class DirectoryKeyResolver:
    """Keys looked up as directory text (raw 32-byte public key, base64) by a sync callable.

    `lookup(key_id)` returns the participant's base64 key, or None when the participant is
    unknown or must not be served (suspended). Decoded keys are memoised by their text, up
    to `entries_max`, so a key changed in the directory applies on the next request. A
    directory entry that does not decode is treated as no key, never as a server error.
    """

    def __init__(self, lookup: Callable[[str], str | None], *, entries_max: int = 10_000) -> None:
        self._lookup = lookup
        self.entries_max = entries_max
        self._decoded: dict[str, Ed25519PublicKey | None] = {}

    async def public_key(self, key_id: str) -> Ed25519PublicKey | None:
        text = self._lookup(key_id)
        if text is None:
            return None
        if text not in self._decoded:
            if len(self._decoded) >= self.entries_max:
                del self._decoded[next(iter(self._decoded))]
            try:
                self._decoded[text] = public_key_from_b64(text)
            except ValueError:
                self._decoded[text] = None
        return self._decoded[text]


class CachedKeyResolver:
    """Caches another resolver's answers (unknown ids too) for `ttl_s`, up to `entries_max` ids.

    A directory lookup per request would cost a database round trip; caching the absence of
    a key keeps a flood of made-up key ids from reaching the database. Call `forget` when a
    participant's key changes so that the new key applies at once.
    """

    def __init__(
        self,
        inner: KeyResolver,
        *,
        clock: Callable[[], float],
        ttl_s: float = 60.0,
        entries_max: int = 10_000,
    ) -> None:
        self._inner = inner
        self._clock = clock
        self.ttl_s = ttl_s
        self.entries_max = entries_max
        self._entries: dict[str, tuple[float, Ed25519PublicKey | None]] = {}

    async def public_key(self, key_id: str) -> Ed25519PublicKey | None:
        now = self._clock()
        hit = self._entries.get(key_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        key = await self._inner.public_key(key_id)
        self._entries.pop(key_id, None)
        if len(self._entries) >= self.entries_max:
            del self._entries[next(iter(self._entries))]  # oldest inserted
        self._entries[key_id] = (now + self.ttl_s, key)
        return key

    def forget(self, key_id: str | None = None) -> None:
        if key_id is None:
            self._entries.clear()
        else:
            self._entries.pop(key_id, None)


# --- keys -------------------------------------------------------------------------------


def generate_private_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def private_key_to_pem(key: Ed25519PrivateKey, password: bytes | None = None) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def load_private_key_pem(data: bytes, password: bytes | None = None) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(data, password=password)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"expected an Ed25519 private key, got {type(key).__name__}")
    return key


def save_private_key(path: Path, key: Ed25519PrivateKey, password: bytes | None = None) -> None:
    """Write a PKCS#8 PEM readable by the owner only; refuse to overwrite an existing key."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private_key_to_pem(key, password))


def load_private_key(path: Path, password: bytes | None = None) -> Ed25519PrivateKey:
    return load_private_key_pem(Path(path).read_bytes(), password)


def public_key_to_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_public_key_pem(data: bytes) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(data)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"expected an Ed25519 public key, got {type(key).__name__}")
    return key


def public_key_to_b64(key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    """The raw 32-byte public key in standard base64, as stored in the participant directory."""
    pub = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def public_key_from_b64(text: str) -> Ed25519PublicKey:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("public key is not valid base64") from None
    if len(raw) != PUBLIC_KEY_BYTES:
        raise ValueError(f"an Ed25519 public key is {PUBLIC_KEY_BYTES} bytes, got {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


# --- the fixed profile ------------------------------------------------------------------
#
# Baygate signs every request with one component list (method, path, query when the target
# has one, content-digest, content-type when present) and a few parameters. For that profile
# the signature base is a handful of lines, written and read here directly: the library
# spends most of a signature's cost on generic structured-field work. Anything outside the
# profile (other components, other parameters, unusual spellings) goes through the library,
# which is also the test oracle for this code. The profile code never accepts what the
# library would refuse: it only takes inputs whose canonical form it can check exactly, and
# hands everything else over.

# RFC 3986 path and query characters, as the library's URL parser accepts them.
_PCHAR = r"A-Za-z0-9._~!$&'()*+,;=:@\-"
_PCT = r"%[0-9A-Fa-f]{2}"
_TARGET_RE = re.compile(rf"(/(?:[{_PCHAR}/]|{_PCT})*)(?:\?((?:[{_PCHAR}/?]|{_PCT})*))?")
_ORIGIN_RE = re.compile(r"https?://[A-Za-z0-9.\-]+(?::[0-9]{1,5})?")
_METHOD_RE = re.compile(r"[A-Z]{1,16}")
# A structured-field string that needs no escape, so its text is its serialisation.
_PLAIN_STRING_RE = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]{0,256}")
# A field value as it may enter a signature base: visible ASCII, inner spaces only.
_FIELD_VALUE_RE = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]{0,1022}[\x21-\x7e])?")
_SF_KEY = r"[a-z*][a-z0-9_.*\-]{0,63}"
_INPUT_RE = re.compile(rf"({_SF_KEY})=(\(([^()]*)\)((?:;.*)?))")
_PARAM_RE = re.compile(
    rf';({_SF_KEY})=(?:(0|[1-9][0-9]{{0,14}})|"([\x20\x21\x23-\x5b\x5d-\x7e]*)")'
)
# One member whose value is a byte sequence in padded base64 (RFC 8941 section 3.3.5).
_SIGNATURE_RE = re.compile(
    rf"({_SF_KEY})=:((?:[A-Za-z0-9+/]{{4}})*(?:[A-Za-z0-9+/]{{2}}==|[A-Za-z0-9+/]{{3}}=)?):"
)
_PARAMS_KNOWN = frozenset({"alg", "created", "expires", "keyid", "nonce", "tag"})


def _content_digest(body: bytes) -> str:
    """The RFC 9530 Content-Digest value Baygate sends: sha-256 of the body."""
    return "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode("ascii") + ":"


def _split_target(url_or_path: str) -> tuple[str, str | None] | None:
    """(path, query) of an absolute URL or origin-form target, or None outside the profile."""
    start = 0
    if not url_or_path.startswith("/"):
        origin = _ORIGIN_RE.match(url_or_path)
        if origin is None:
            return None
        start = origin.end()
        if start == len(url_or_path):
            return "/", None
    target = _TARGET_RE.fullmatch(url_or_path, start)
    return None if target is None else (target[1], target[2])


def _covered(query: str | None, content_type: str | None) -> str:
    """The inner list of the components Baygate covers, serialised."""
    return (
        '("@method" "@path"'
        + (' "@query"' if query is not None else "")
        + ' "content-digest"'
        + (' "content-type")' if content_type is not None else ")")
    )


def _signature_base(
    method: str,
    path: str,
    query: str | None,
    digest: str,
    content_type: str | None,
    signature_params: str,
) -> bytes:
    """RFC 9421 section 2.5 for the profile: one line per component, then the parameters."""
    lines = [f'"@method": {method}', f'"@path": {path}']
    if query is not None:
        lines.append(f'"@query": ?{query}')
    lines.append(f'"content-digest": {digest}')
    if content_type is not None:
        lines.append(f'"content-type": {content_type}')
    lines.append(f'"@signature-params": {signature_params}')
    return "\n".join(lines).encode("ascii")


def _sign_profile(
    method: str,
    url_or_path: str,
    out: dict[str, str],
    body: bytes,
    key_id: str,
    private_key: Ed25519PrivateKey,
    created: int,
    nonce: str,
) -> bool:
    """Sign in place within the profile; False (and `out` untouched) when outside it."""
    target = _split_target(url_or_path)
    names = [n for n in out if n.lower() in ("content-type", "content-digest")]
    if (
        target is None
        or not _METHOD_RE.fullmatch(method)
        or not _PLAIN_STRING_RE.fullmatch(key_id)
        or not _PLAIN_STRING_RE.fullmatch(nonce)
        or any(n.lower() == "content-digest" for n in names)
        or len(names) > 1
    ):
        return False
    content_type = out[names[0]].strip(" \t") if names else None
    if content_type is not None and not _FIELD_VALUE_RE.fullmatch(content_type):
        return False
    path, query = target
    params = (
        f'{_covered(query, content_type)};created={created};keyid="{key_id}"'
        f';alg="{ALGORITHM}";nonce="{nonce}"'
    )
    digest = _content_digest(body)
    base = _signature_base(method, path, query, digest, content_type, params)
    signature = base64.b64encode(ed25519.sign(private_key, base)).decode("ascii")
    for name in [n for n in out if n.lower() in ("signature-input", "signature")]:
        del out[name]
    out["Content-Digest"] = digest
    out["Signature-Input"] = f"{SIGNATURE_LABEL}={params}"
    out["Signature"] = f"{SIGNATURE_LABEL}=:{signature}:"
    return True


# --- signing ----------------------------------------------------------------------------


@dataclass
class _Message:
    """The request shape http-message-signatures reads: method, absolute URL, header fields."""

    method: str
    url: str
    headers: Any


class _OneKey(HTTPSignatureKeyResolver):
    def __init__(self, key_id: str, private: Any = None, public: Any = None) -> None:
        self.key_id, self.private, self.public = key_id, private, public

    def resolve_private_key(self, key_id: str) -> Any:
        return self.private

    def resolve_public_key(self, key_id: str) -> Any:
        return self.public if key_id == self.key_id else None


def _has_field(headers: Iterable[str], name: str) -> bool:
    return any(h.lower() == name for h in headers)


def sign_request(
    method: str,
    url_or_path: str,
    headers: Mapping[str, str],
    body: bytes,
    key_id: str,
    private_key: Ed25519PrivateKey,
    created: float | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """Return `headers` plus Content-Digest, Signature-Input and Signature for this request.

    `url_or_path` is an encoded absolute URL or a target starting with "/"; the path and
    query signed are exactly those sent, so pass the same string to the HTTP client
    (unencoded characters are refused). Set Content-Type before signing: it is covered
    when present, and a client that adds one afterwards breaks the signature. An existing
    Content-Digest is kept if it matches the body. `created` is epoch seconds (default now).
    """
    out = dict(headers)
    method = method.upper()
    when = dt.datetime.fromtimestamp(time.time() if created is None else created, tz=dt.UTC)
    # A fresh nonce per request: a deliberate resend of the same request in the same
    # second gets a new signature instead of being refused as a replay.
    nonce = nonce if nonce is not None else secrets.token_urlsafe(12)
    if _sign_profile(
        method, url_or_path, out, body, key_id, private_key, int(when.timestamp()), nonce
    ):
        return out
    url = url_or_path if "://" in url_or_path else _PLACEHOLDER_ORIGIN + url_or_path
    covered = ["@method", "@path"]
    if "?" in url.split("#", 1)[0]:
        covered.append("@query")
    covered.append("content-digest")
    if _has_field(out, "content-type"):
        covered.append("content-type")
    signer = HTTPMessageSigner(
        signature_algorithm=algorithms.ED25519, key_resolver=_OneKey(key_id, private=private_key)
    )
    signer.sign(
        _Message(method, url, out),
        key_id=key_id,
        created=when,
        label=SIGNATURE_LABEL,
        covered_component_ids=covered,
        nonce=nonce,
        body=body,
        use_existing_digest=True,
    )
    return out


# --- verifying --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Parsed:
    key_id: str
    created: int
    expires: int | None
    components: tuple[str, ...]  # covered names without parameters
    names: tuple[str, ...]  # every covered name
    signature: bytes
    base: bytes | None = None  # the signature base, when the request is in the profile


def _malformed(detail: str) -> AuthError:
    return _refuse("signature-malformed", "Malformed signature", detail)


def _reject_duplicate(key: str, context: str) -> None:
    """Several signatures, or a parameter given twice: ambiguous, so refused, never merged."""
    raise ValueError(f"duplicate {context} key {key!r}")


def _header_fields(headers: Mapping[str, str]) -> dict[str, str]:
    """Lower-cased names, values trimmed, repeated field lines joined with ", " as HTTP allows."""
    fields: dict[str, str] = {}
    for name, value in headers.items():
        key, value = name.lower(), value.strip(" \t")
        fields[key] = f"{fields[key]}, {value}" if key in fields else value
    return fields


def _check_size(name: str, value: str) -> None:
    if len(value) > SIGNATURE_HEADER_BYTES_MAX:
        raise _malformed(f"{name} is longer than {SIGNATURE_HEADER_BYTES_MAX} bytes")


def _parse_dictionary(name: str, value: str) -> dict[str, Any]:
    try:
        parsed = http_sf.parse(
            value.encode("ascii"), tltype="dictionary", on_duplicate_key=_reject_duplicate
        )
    except (ValueError, TypeError, UnicodeEncodeError) as exc:
        raise _malformed(f"{name} is not a valid structured field: {exc}") from None
    if not isinstance(parsed, dict) or len(parsed) != 1:
        found = len(parsed) if isinstance(parsed, dict) else 0
        raise _malformed(f"{name} must hold exactly one signature, found {found}")
    return parsed


def _parse_signature_field(value: str) -> tuple[str, bytes]:
    """(label, signature bytes) of the Signature field: one member, canonical base64."""
    match = _SIGNATURE_RE.fullmatch(value)
    if match is None:
        raise _malformed("Signature must hold exactly one signature, a padded base64 byte sequence")
    raw = base64.b64decode(match[2])
    if base64.b64encode(raw).decode("ascii") != match[2]:
        raise _malformed("Signature is not canonical base64")
    return match[1], raw


def _check_params(params: Mapping[str, Any]) -> tuple[str, int, int | None]:
    key_id, created, expires = params.get("keyid"), params.get("created"), params.get("expires")
    if not isinstance(key_id, str) or not KEY_ID_RE.fullmatch(key_id):
        raise _malformed("keyid must be a participant id")
    if type(created) is not int:
        raise _malformed("created must be an integer (seconds since the epoch)")
    if expires is not None and type(expires) is not int:
        raise _malformed("expires must be an integer (seconds since the epoch)")
    if params.get("alg", ALGORITHM) != ALGORITHM:
        raise _malformed(f"alg must be {ALGORITHM!r}")
    return key_id, created, expires


def _parse_profile(
    fields: Mapping[str, str], method: str, path_qs: str, label: str, signature: bytes
) -> _Parsed | None:
    """The parsed signature with its base when the request is in the profile, else None."""
    match = _INPUT_RE.fullmatch(fields["signature-input"])
    target = _TARGET_RE.fullmatch(path_qs)
    digest, content_type = fields.get("content-digest"), fields.get("content-type")
    if (
        match is None
        or target is None
        or digest is None
        or not _METHOD_RE.fullmatch(method)
        or not _FIELD_VALUE_RE.fullmatch(digest)
        or (content_type is not None and not _FIELD_VALUE_RE.fullmatch(content_type))
    ):
        return None
    path, query = target[1], target[2]
    if match[3] != _covered(query, content_type)[1:-1]:
        return None
    params: dict[str, int | str] = {}
    text, at = match[4], 0
    while at < len(text):
        param = _PARAM_RE.match(text, at)
        if param is None or param[1] not in _PARAMS_KNOWN:
            return None
        if param[1] in params:
            raise _malformed(f"Signature-Input gives parameter {param[1]!r} twice")
        params[param[1]] = int(param[2]) if param[2] is not None else param[3]
        at = param.end()
    if match[1] != label:
        raise _malformed(f"Signature has no member {match[1]!r}")
    key_id, created, expires = _check_params(params)
    components = tuple(_covered(query, content_type)[1:-1].replace('"', "").split(" "))
    base = _signature_base(method, path, query, digest, content_type, match[2])
    return _Parsed(key_id, created, expires, components, components, signature, base)


def _parse_signature(fields: Mapping[str, str], method: str, path_qs: str) -> _Parsed:
    missing = [h for h in ("Signature-Input", "Signature") if h.lower() not in fields]
    if missing:
        raise _refuse(
            "signature-missing", "Signature required", f"missing header(s): {', '.join(missing)}"
        )
    _check_size("Signature-Input", fields["signature-input"])
    _check_size("Signature", fields["signature"])
    label, signature = _parse_signature_field(fields["signature"])
    profiled = _parse_profile(fields, method, path_qs, label, signature)
    if profiled is not None:
        return profiled
    inputs = _parse_dictionary("Signature-Input", fields["signature-input"])
    if label not in inputs:
        raise _malformed(f"Signature has no member {next(iter(inputs))!r}")
    members, params = inputs[label]
    if not isinstance(members, list):
        raise _malformed("Signature-Input must be an inner list")
    if len(members) > COMPONENTS_MAX:
        raise _malformed(f"more than {COMPONENTS_MAX} covered components")
    if any(not isinstance(m, str) for m, _ in members):
        raise _malformed("covered components must be strings")
    key_id, created, expires = _check_params(params)
    components = tuple(m for m, p in members if not p)
    names = tuple(m for m, _ in members)
    return _Parsed(key_id, created, expires, components, names, signature)


def _check_coverage(parsed: _Parsed, path_qs: str, fields: Mapping[str, str]) -> None:
    required = ["@method", "@path", "content-digest"]
    if "?" in path_qs:
        required.append("@query")
    if "content-type" in fields:
        required.append("content-type")
    absent = [c for c in required if c not in parsed.components]
    if absent:
        raise _refuse(
            "signature-coverage",
            "Signature does not cover the request",
            f"not covered: {', '.join(absent)}",
        )
    foreign = [c for c in parsed.names if c.startswith("@") and c not in DERIVED_ALLOWED]
    if foreign:
        raise _refuse(
            "signature-coverage",
            "Signature does not cover the request",
            f"components not accepted: {', '.join(foreign)}",
        )


class _ClockedVerifier(HTTPMessageVerifier):
    """The library verifier, with its wall-clock time checks replaced by the injected clock's."""

    def __init__(self, check_window: Callable[[Mapping[str, Any]], None], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._check_window = check_window

    def validate_created_and_expires(self, sig_input: Any, max_age: Any = None) -> None:
        self._check_window(sig_input.params)


class Verifier:
    """Verifies signed requests and returns the participant id (the key id) that signed.

    `clock` returns seconds since the epoch. A signature is fresh while `created` lies in
    [now - max_age_s - clock_skew_s, now + clock_skew_s] (and `expires`, if given, is not
    past). Accepted signatures are remembered until they leave that window, in a memory of
    at most `replay_cache_max` entries. Signatures in Baygate's own profile are checked
    against a signature base built here; `library_only=True` checks every signature with
    http-message-signatures instead (the reference the profile code is tested against).
    """

    def __init__(
        self,
        resolver: KeyResolver,
        *,
        clock: Callable[[], float],
        max_age_s: int = 300,
        clock_skew_s: int = 5,
        replay_cache_max: int = 500_000,
        library_only: bool = False,
    ) -> None:
        if max_age_s <= 0 or clock_skew_s < 0:
            raise ValueError("max_age_s must be positive and clock_skew_s not negative")
        self._resolver = resolver
        self.library_only = library_only
        self._clock = clock
        self.max_age_s = max_age_s
        self.clock_skew_s = clock_skew_s
        self.replay_cache = ReplayCache(replay_cache_max)

    def _check_window(self, params: Mapping[str, Any], now: float | None = None) -> None:
        now = self._clock() if now is None else now
        created, expires = params["created"], params.get("expires")
        if created > now + self.clock_skew_s:
            raise _refuse(
                "signature-future",
                "Signature from the future",
                f"created {created} is ahead of the gateway clock ({int(now)}) by more than {self.clock_skew_s} s",
            )
        if created < now - self.max_age_s - self.clock_skew_s:
            raise _refuse(
                "signature-stale",
                "Signature too old",
                f"created {created} is more than {self.max_age_s} s before the gateway clock ({int(now)})",
            )
        if expires is not None and expires < now - self.clock_skew_s:
            raise _refuse(
                "signature-stale",
                "Signature expired",
                f"expires {expires} is past (gateway clock {int(now)})",
            )

    async def verify(
        self, method: str, path_qs: str, headers: Mapping[str, str], body: bytes
    ) -> str:
        """Return the participant id that signed this request, or raise AuthError."""
        fields = _header_fields(headers)
        parsed = _parse_signature(fields, method, path_qs)
        _check_coverage(parsed, path_qs, fields)
        self._check_window({"created": parsed.created, "expires": parsed.expires})
        rkey = replay_key(parsed.key_id, parsed.signature)
        if self.replay_cache.seen(rkey, self._clock()):
            raise _refuse(
                "signature-replayed", "Replayed request", "this signature was already used"
            )
        public_key = await self._resolver.public_key(parsed.key_id)
        if public_key is None:
            raise _refuse(
                "key-unknown", "Unknown key", f"no active key for key id {parsed.key_id!r}"
            )
        self._check_digest(fields, body)
        self._check_signature(parsed, method, path_qs, headers, public_key)
        now = self._clock()
        expires_at = parsed.created + self.max_age_s + self.clock_skew_s
        if parsed.expires is not None:
            expires_at = min(expires_at, parsed.expires + self.clock_skew_s)
        added = self.replay_cache.add(rkey, expires_at, now)
        if added is AddResult.DUPLICATE:
            raise _refuse(
                "signature-replayed", "Replayed request", "this signature was already used"
            )
        if added is AddResult.FULL:
            raise AuthError(
                503,
                _PROBLEM_PREFIX + "replay-memory-full",
                "Service Unavailable",
                "too many recent requests to check for replays; retry later",
                retry_after_s=1,
            )
        return parsed.key_id

    @staticmethod
    def _check_digest(fields: Mapping[str, str], body: bytes) -> None:
        value = fields.get("content-digest")
        if value is None:
            raise _refuse(
                "signature-missing", "Signature required", "missing header: Content-Digest"
            )
        if value == _content_digest(body):
            return
        try:
            ContentDigest.verify(value, body)
        except InvalidSignature as exc:
            raise _refuse("content-digest-mismatch", "Content-Digest mismatch", str(exc)) from None

    def _check_signature(
        self,
        parsed: _Parsed,
        method: str,
        path_qs: str,
        headers: Mapping[str, str],
        key: Ed25519PublicKey,
    ) -> None:
        if not path_qs.startswith("/"):
            raise _refuse(
                "signature-malformed", "Malformed request target", "the target must start with '/'"
            )
        if parsed.base is not None and not self.library_only:
            if not ed25519.verify(key, parsed.signature, parsed.base):
                raise _refuse(
                    "signature-invalid", "Invalid signature", "the signature does not verify"
                )
            return
        verifier = _ClockedVerifier(
            self._check_window,
            signature_algorithm=algorithms.ED25519,
            key_resolver=_OneKey(parsed.key_id, public=key),
        )
        try:
            verifier.verify(_Message(method, _PLACEHOLDER_ORIGIN + path_qs, headers), max_age=None)
        except AuthError:
            raise
        except HTTPMessageSignaturesException as exc:
            raise _refuse(
                "signature-invalid",
                "Invalid signature",
                f"the signature does not verify ({type(exc.__cause__ or exc).__name__})",
            ) from None
