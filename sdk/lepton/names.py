"""Name rules shared by the SDK, the platform and the Knative renderer."""

from __future__ import annotations

import re

DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
# S3's bucket naming rules: 3-63 chars, lower-case letters, digits, dots and hyphens, starting
# and ending with a letter or digit, no '..', not formatted like an IP address.
BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
IP_ADDRESS = re.compile(r"^\d+\.\d+\.\d+\.\d+$")


def check_function_name(name: str) -> str:
    if not isinstance(name, str) or not DNS_LABEL.match(name):
        raise ValueError(
            f"{name!r} is not a valid function name: use 1-63 lower-case letters, digits and '-', "
            "starting with a letter and not ending with '-' (a DNS-1123 label)"
        )
    return name


# A secret is one value, seen by a function as the environment variable of the same name.
# Upper case, so its Kubernetes Secret's name (lower case, '_' as '-') is unique and valid.
SECRET_NAME = re.compile(r"^[A-Z]([A-Z0-9_]{0,98}[A-Z0-9])?$")


def check_secret_name(name: str) -> str:
    if not isinstance(name, str) or not SECRET_NAME.match(name) or name.startswith("LEPTON_"):
        raise ValueError(
            f"{name!r} is not a valid secret name: use 1-100 upper-case letters, digits and '_', starting "
            "with a letter and not ending with '_' (the environment variable a function reads; LEPTON_ is reserved)"
        )
    return name


def check_bucket_name(name: str) -> str:
    if not isinstance(name, str) or not BUCKET_NAME.match(name) or ".." in name or ".-" in name or "-." in name or IP_ADDRESS.match(name):
        raise ValueError(
            f"{name!r} is not a valid bucket name: use 3-63 lower-case letters, digits, '.' and '-', "
            "starting and ending with a letter or digit"
        )
    return name


MAX_KEY_BYTES = 1024


def check_object_key(key: str) -> str:
    """Keys are S3-compatible and safe to map onto any store: no traversal, no control bytes."""
    if not isinstance(key, str) or not key:
        raise ValueError("object key is empty")
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise ValueError(f"object key is over {MAX_KEY_BYTES} bytes")
    if any(ord(c) < 32 or ord(c) == 127 for c in key):
        raise ValueError(f"object key {key!r} contains a NUL or control character")
    if key.startswith("/"):
        raise ValueError(f"object key {key!r} is an absolute path; keys are relative, like 'images/cat.png'")
    if any(part in (".", "..") for part in key.split("/")):
        raise ValueError(f"object key {key!r} has a '.' or '..' segment")
    return key
