"""Ed25519 keys and signatures for indicator snapshots.

The EU Centre signs each snapshot manifest with its private key; providers hold only the public
key and refuse any snapshot whose manifest does not verify. Keys are PEM files: ``private.pem``
(PKCS8, unencrypted, mode 0600) and ``public.pem`` (SubjectPublicKeyInfo). Keys are read from a
local path or any Beam filesystem URL (``gs://bucket/keys/public.pem``, or a ``gs://bucket/keys``
prefix holding the default file name) through ``apache_beam.io.filesystems.FileSystems``; keys are
only ever written locally.
"""
from __future__ import annotations

import hashlib
import os
from typing import Union

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from csadetect.core import fs

PRIVATE_NAME = "private.pem"
PUBLIC_NAME = "public.pem"

PrivateKeyLike = Union[Ed25519PrivateKey, str, os.PathLike]
PublicKeyLike = Union[Ed25519PublicKey, str, os.PathLike]


class SigningError(ValueError):
    """A missing or unusable key; the message is one line."""


def generate_keypair(keydir: str | os.PathLike, overwrite: bool = False) -> tuple[str, str]:
    """Create ``keydir/private.pem`` (0600) and ``keydir/public.pem``; returns their paths.

    Refuses to replace an existing private key unless ``overwrite``: losing the key that signed
    the snapshots providers trust is not something to do by accident.
    """
    return write_keypair(keydir, Ed25519PrivateKey.generate(), PRIVATE_NAME, PUBLIC_NAME, overwrite,
                         "a signing key", SigningError)


def write_keypair(keydir, key, private_name: str, public_name: str, overwrite: bool, role: str,
                  error: type = SigningError) -> tuple[str, str]:
    """Write ``key`` (any ``cryptography`` private key) as ``keydir/private_name`` (PKCS8, 0600)
    and its public half as ``keydir/public_name``; refuses to replace an existing private key
    unless ``overwrite`` (raising ``error``, naming the key's ``role``). Returns both paths."""
    keydir = os.fspath(keydir)
    os.makedirs(keydir, mode=0o700, exist_ok=True)
    private_path = os.path.join(keydir, private_name)
    public_path = os.path.join(keydir, public_name)
    if os.path.exists(private_path) and not overwrite:
        raise error(f"{private_path} already exists; refusing to overwrite {role}")
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # Each file is replaced whole; the two replaces are not one step, so a keygen stopped between
    # them leaves halves of two pairs, which load_pem_private_key then refuses (PAIR_MISMATCH).
    fs.replace_whole(private_path, private_pem, 0o600)
    fs.replace_whole(public_path, public_pem, 0o644)
    return private_path, public_path


PAIR_MISMATCH = "{private} and {public} are not one key pair (a key generation stopped half way?); generate both again"


def write_private_file(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` with mode 0600 (atomically, whatever the umask)."""
    fs.replace_whole(path, data, 0o600)


def _read_pem_url(url: str, what: str, default_name: str, error: type) -> tuple[str, bytes]:
    """A PEM file (or ``default_name`` under a "directory" prefix) on a Beam filesystem."""
    try:
        if url.endswith("/") or not fs.exists(url):
            inside = fs.join(url.rstrip("/"), default_name)
            if not fs.exists(inside):
                raise error(f"{what} not found: {url}")
            url = inside
        with fs.open_read(url) as fh:  # its existence was just checked: read_bytes would ask again
            return url, fh.read()
    except error:
        raise
    except Exception as exc:  # BeamIOError, missing filesystem plugin or credentials, ...
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
        raise error(f"cannot read {what} {url}: {type(exc).__name__} {first}".rstrip()) from None


def _read_pem(path: str | os.PathLike, what: str, default_name: str, error: type = SigningError) -> tuple[str, bytes]:
    path = os.fspath(path)
    if fs.is_url(path):
        return _read_pem_url(path, what, default_name, error)
    if os.path.isdir(path):
        path = os.path.join(path, default_name)
    try:
        with open(path, "rb") as fh:
            return path, fh.read()
    except FileNotFoundError:
        raise error(f"{what} not found: {path}") from None
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or type(exc).__name__}") from None


def load_pem_private_key(key, key_type: type, algorithm: str, what: str, default_name: str, error: type,
                         public_name: str | None = None):
    """A private key of ``key_type`` from a PEM path (or a key directory holding ``default_name``);
    key objects pass through. Failures raise ``error`` with one line naming ``what`` and the path.
    With ``public_name``, a local public key of that name beside a private key of the default name
    (a pair as key generation writes it) must be its half: a key generation stopped between its two
    files leaves a pair that signs what nobody verifies, or seals what nobody can open."""
    if isinstance(key, key_type):
        return key
    path, data = _read_pem(key, what, default_name, error)
    loaded = _parse_private(path, data, key_type, algorithm, what, error)
    if public_name and not fs.is_url(path) and os.path.basename(path) == default_name:
        public_path = os.path.join(os.path.dirname(path), public_name)
        if os.path.isfile(public_path):
            try:
                theirs = load_pem_public_key(public_path, type(loaded.public_key()), key_type, algorithm, "public key",
                                             public_name, error)
                paired = raw_key_id(theirs) == raw_key_id(loaded.public_key())
            except error:
                paired = False
            if not paired:
                raise error(PAIR_MISMATCH.format(private=path, public=public_path))
    return loaded


def _parse_private(path: str, data: bytes, key_type: type, algorithm: str, what: str, error: type):
    try:
        loaded = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise error(f"{what} {path} is encrypted; use an unencrypted PKCS8 key") from None
    except Exception:  # ValueError, UnsupportedAlgorithm, ...
        raise error(f"cannot parse {what} {path}: not a PEM private key") from None
    if not isinstance(loaded, key_type):
        raise error(f"{what} {path} is not an {algorithm} key")
    return loaded


def load_pem_public_key(key, key_type: type, private_type: type, algorithm: str, what: str, default_name: str,
                        error: type):
    """A public key of ``key_type`` from a PEM path (or a key directory holding ``default_name``);
    key objects pass through (a ``private_type`` object gives its public half)."""
    if isinstance(key, key_type):
        return key
    if isinstance(key, private_type):
        return key.public_key()
    path, data = _read_pem(key, what, default_name, error)
    if b"PRIVATE KEY" in data:
        raise error(f"{path} is a private key; pass the {what} ({default_name})")
    try:
        loaded = serialization.load_pem_public_key(data)
    except Exception:
        raise error(f"cannot parse {what} {path}: not a PEM public key") from None
    if not isinstance(loaded, key_type):
        raise error(f"{what} {path} is not an {algorithm} key")
    return loaded


def load_private_key(key: PrivateKeyLike) -> Ed25519PrivateKey:
    """An Ed25519 private key from a PEM path (or a key directory); key objects pass through."""
    return load_pem_private_key(key, Ed25519PrivateKey, "Ed25519", "private key", PRIVATE_NAME, SigningError,
                                PUBLIC_NAME)


def load_public_key(key: PublicKeyLike) -> Ed25519PublicKey:
    """An Ed25519 public key from a PEM path (or a key directory); key objects pass through
    (a private key object gives its public half)."""
    return load_pem_public_key(key, Ed25519PublicKey, Ed25519PrivateKey, "Ed25519", "public key", PUBLIC_NAME,
                               SigningError)


def raw_key_id(public) -> str:
    """The first 16 hex of SHA-256 of a public key's raw bytes (Ed25519 or X25519)."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def key_id(key: PublicKeyLike | Ed25519PrivateKey) -> str:
    """A short fingerprint of a public key: the first 16 hex of SHA-256 of its raw 32 bytes."""
    return raw_key_id(load_public_key(key))


def sign(private_key: PrivateKeyLike, data: bytes) -> bytes:
    """The 64-byte Ed25519 signature of ``data``."""
    return load_private_key(private_key).sign(data)


def verify(public_key: PublicKeyLike, data: bytes, signature: bytes) -> bool:
    """True when ``signature`` is a valid Ed25519 signature of ``data`` under ``public_key``."""
    try:
        load_public_key(public_key).verify(signature, data)
    except InvalidSignature:
        return False
    return True
