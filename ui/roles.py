"""Operator and engineer roles; the engineer role is unlocked by a PIN set at install.

The PIN is stored as a salted scrypt hash in the user's config directory
(``$XDG_CONFIG_HOME/sorter/pin.json``), never in clear. The installer calls ``set_pin`` (or runs
``sorter-gui --set-pin``); the GUI only ever verifies.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path

from sorter.errors import SorterError

MIN_PIN_LENGTH = 4
SCRYPT_N = 2**14  # scrypt cost parameters recommended for interactive logins (RFC 7914, section 2)
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16


class Role(enum.StrEnum):
    OPERATOR = "operator"
    ENGINEER = "engineer"

    @property
    def title(self) -> str:
        return self.value.capitalize()


class PinError(SorterError):
    """The PIN cannot be set or the stored PIN file is unusable."""


def config_dir() -> Path:
    """The user's sorter config folder (XDG base directory rules)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "sorter"


def pin_path() -> Path:
    return config_dir() / "pin.json"


def set_pin(pin: str, path: Path | None = None) -> Path:
    """Store ``pin`` hashed with a fresh random salt; returns the file written (mode 0600)."""
    if len(pin) < MIN_PIN_LENGTH or not pin.isdigit():
        raise PinError(f"the PIN must be at least {MIN_PIN_LENGTH} digits; choose a longer numeric PIN")
    path = path or pin_path()
    salt = secrets.token_bytes(SALT_BYTES)
    record = {
        "algorithm": "scrypt", "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P,
        "salt": salt.hex(), "hash": _scrypt(pin, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P).hex(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(record, f)
    os.replace(tmp, path)
    return path


def pin_is_set(path: Path | None = None) -> bool:
    return (path or pin_path()).is_file()


def verify_pin(pin: str, path: Path | None = None) -> bool:
    """True when ``pin`` matches the stored hash; raises PinError when no usable PIN is stored."""
    path = path or pin_path()
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        salt = bytes.fromhex(record["salt"])
        expected = bytes.fromhex(record["hash"])
        n, r, p = int(record["n"]), int(record["r"]), int(record["p"])
    except FileNotFoundError:
        raise PinError(f"no engineer PIN is set on this machine ({path}); "
                       "run 'sorter-gui --set-pin' to set one") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PinError(f"the PIN file {path} is unreadable ({exc}); "
                       "run 'sorter-gui --set-pin' to set the PIN again") from None
    if record.get("algorithm") != "scrypt":
        raise PinError(f"the PIN file {path} uses an unknown algorithm; run 'sorter-gui --set-pin' again")
    return hmac.compare_digest(_scrypt(pin, salt, n, r, p), expected)


def _scrypt(pin: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(pin.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=64 * 1024 * 1024, dklen=32)
