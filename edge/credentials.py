"""Secrets from the environment or a systemd credential, never from config.yaml."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from edge.errors import ConfigError


def read_key(
    env: str,
    credential: str,
    what: str,
    min_bytes: int,
    environ: Mapping[str, str] | None = None,
) -> bytes | None:
    """``$env``, else ``$CREDENTIALS_DIRECTORY/credential``, stripped; None if neither is
    set; ConfigError if unreadable or shorter than ``min_bytes`` (``what`` names it)."""
    environ = os.environ if environ is None else environ
    text: str | None = environ.get(env) or None
    directory = environ.get("CREDENTIALS_DIRECTORY")
    if text is None and directory:
        path = Path(directory) / credential
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            text = None
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"{path}: cannot read the {what}: {err}") from err
    if text is None:
        return None
    key = text.strip().encode("utf-8")
    if len(key) < min_bytes:
        raise ConfigError(
            f"the {what} is {len(key)} bytes, needs at least {min_bytes} "
            "(make one: python3 -c 'import secrets; print(secrets.token_hex(32))')"
        )
    return key
