"""Secrets for a one-box demo: made once, kept (mode 0600) in the data directory (mode 0700).

Production sets them in the environment; `sewamitra up` falls back to these so a fresh
checkout runs without any setup, and says so.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

FILES = {
    "SEWAMITRA_SECRET_KEY": "secret-key",
    "SEWAMITRA_PRIVACY_KEY": "privacy-key",
    "TWILIO_AUTH_TOKEN": "local-twilio-auth-token",
    "TWILIO_ACCOUNT_SID": "local-twilio-account-sid",
    "PLIVO_AUTH_TOKEN": "local-plivo-auth-token",
    "PLIVO_AUTH_ID": "local-plivo-auth-id",
}
# An account id is made up only for the local sandbox of the platform.
SANDBOX_ONLY = {"TWILIO_ACCOUNT_SID", "PLIVO_AUTH_ID"}
PLATFORM_OF = {"TWILIO_AUTH_TOKEN": "twilio", "TWILIO_ACCOUNT_SID": "twilio"}
PLATFORM_OF |= {"PLIVO_AUTH_TOKEN": "plivo", "PLIVO_AUTH_ID": "plivo"}
ADMIN_PASSWORD_FILE = "console-admin-password"  # noqa: S105 (a file name)


def path(data_dir: Path, env_name: str) -> Path:
    return data_dir / FILES[env_name]


def read_or_create(file: Path, make: int = 32, prefix: str = "", *, upper: bool = False) -> str:
    """The secret in `file`, created from `make` random bytes the first time."""
    if file.exists():
        return file.read_text().strip()
    private_directory(file.parent)
    made = secrets.token_hex(make) if prefix else secrets.token_urlsafe(make)
    value = prefix + (made.upper() if upper else made)
    descriptor = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(value + "\n")
    return value


def private_directory(directory: Path) -> None:
    """`directory` made if missing, and (it holds secrets, a database, Redis's files) entered by its owner alone."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    directory.chmod(0o700)


def fill_environment(data_dir: Path, environ: dict[str, str], *, sandbox: bool, platform: str = "twilio") -> list[str]:
    """Put the local secret of every variable `environ` lacks into it (the configured platform's
    alone); name those filled."""
    filled = []
    for env_name in FILES:
        if environ.get(env_name) or (env_name in SANDBOX_ONLY and not sandbox):
            continue
        if PLATFORM_OF.get(env_name, platform) != platform:
            continue
        if env_name == "TWILIO_ACCOUNT_SID":
            environ[env_name] = read_or_create(path(data_dir, env_name), make=16, prefix="AC")
        elif env_name == "PLIVO_AUTH_ID":  # Plivo's Auth IDs: MA and 18 capitals or digits
            environ[env_name] = read_or_create(path(data_dir, env_name), make=9, prefix="MA", upper=True)
        else:
            environ[env_name] = read_or_create(path(data_dir, env_name))
        filled.append(env_name)
    return filled
