"""Ed25519 keys and signatures for indicator snapshots.

The EU Centre signs each snapshot manifest with its private key; providers hold only the public
key and refuse any snapshot whose manifest does not verify. Keys are PEM files: ``private.pem``
(PKCS8, unencrypted, mode 0600) and ``public.pem`` (SubjectPublicKeyInfo).
"""
from __future__ import annotations

import hashlib
import os
from typing import Union

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

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
    keydir = os.fspath(keydir)
    os.makedirs(keydir, mode=0o700, exist_ok=True)
    private_path = os.path.join(keydir, PRIVATE_NAME)
    public_path = os.path.join(keydir, PUBLIC_NAME)
    if os.path.exists(private_path) and not overwrite:
        raise SigningError(f"{private_path} already exists; refusing to overwrite a signing key")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    tmp = private_path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(private_pem)
    os.chmod(tmp, 0o600)
    os.replace(tmp, private_path)
    with open(public_path, "wb") as fh:
        fh.write(public_pem)
    return private_path, public_path


def _read_pem(path: str | os.PathLike, what: str, default_name: str) -> tuple[str, bytes]:
    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, default_name)
    try:
        with open(path, "rb") as fh:
            return path, fh.read()
    except FileNotFoundError:
        raise SigningError(f"{what} not found: {path}") from None
    except OSError as exc:
        raise SigningError(f"cannot read {what} {path}: {exc.strerror or type(exc).__name__}") from None


def load_private_key(key: PrivateKeyLike) -> Ed25519PrivateKey:
    """An Ed25519 private key from a PEM path (or a key directory); key objects pass through."""
    if isinstance(key, Ed25519PrivateKey):
        return key
    path, data = _read_pem(key, "private key", PRIVATE_NAME)
    try:
        loaded = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise SigningError(f"private key {path} is encrypted; use an unencrypted PKCS8 key") from None
    except Exception:  # ValueError, UnsupportedAlgorithm, ...
        raise SigningError(f"cannot parse private key {path}: not a PEM private key") from None
    if not isinstance(loaded, Ed25519PrivateKey):
        raise SigningError(f"private key {path} is not an Ed25519 key")
    return loaded


def load_public_key(key: PublicKeyLike) -> Ed25519PublicKey:
    """An Ed25519 public key from a PEM path (or a key directory); key objects pass through
    (a private key object gives its public half)."""
    if isinstance(key, Ed25519PublicKey):
        return key
    if isinstance(key, Ed25519PrivateKey):
        return key.public_key()
    path, data = _read_pem(key, "public key", PUBLIC_NAME)
    if b"PRIVATE KEY" in data:
        raise SigningError(f"{path} is a private key; pass the public key ({PUBLIC_NAME})")
    try:
        loaded = serialization.load_pem_public_key(data)
    except Exception:
        raise SigningError(f"cannot parse public key {path}: not a PEM public key") from None
    if not isinstance(loaded, Ed25519PublicKey):
        raise SigningError(f"public key {path} is not an Ed25519 key")
    return loaded


def key_id(key: PublicKeyLike | Ed25519PrivateKey) -> str:
    """A short fingerprint of a public key: the first 16 hex of SHA-256 of its raw 32 bytes."""
    public = load_public_key(key)
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


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
