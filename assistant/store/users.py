"""Web app accounts in the database (``settings.database``): a name and a salted argon2id hash of the password,
never the password.

``RADASSIST_AUTH_USER``/``RADASSIST_AUTH_PASSWORD`` (the log-in of earlier versions) still work: that pair is one
more account, checked before the table and listed with ``source="settings"``; its name cannot be added again.
"""

from __future__ import annotations

import hmac
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from assistant.errors import RadassistError
from assistant.settings import USER_NAME_PATTERN, Settings
from assistant.store.db import DatabaseStore

logger = logging.getLogger(__name__)

NAME_PATTERN = USER_NAME_PATTERN  # lower case only: see assistant.settings
MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 1024  # hashing is deliberately slow; an unbounded input would make it a denial of service


class UserError(RadassistError):
    """An account cannot be added, removed or read (bad name or password, duplicate, unknown, database)."""


def check_user_name(name: str) -> str:
    """``name`` if it is a valid user name, else :class:`UserError` saying what is allowed."""
    if not NAME_PATTERN.fullmatch(name):
        lowered = name.strip().lower()
        hint = f" (did you mean {lowered!r}?)" if lowered != name and NAME_PATTERN.fullmatch(lowered) else ""
        raise UserError(
            f"invalid user name {name!r}{hint}: 1-64 characters, lower-case letters, digits and . _ @ -, "
            "starting with a letter or digit"
        )
    return name


@dataclass(frozen=True)
class UserInfo:
    """A line of the account list (never the hash)."""

    name: str
    created_at: float | None  # None for the account from the settings
    source: str  # "database" or "settings"


class UserStore(DatabaseStore):
    """The ``users`` table of the database (shared :mod:`assistant.store.db` rules; ``target`` a SQLite file's
    ``Path`` or a database URL), plus the optional account from the settings; safe to share between threads."""

    WHAT = "user database"
    ERROR = UserError

    def __init__(self, path: Path | str, settings_account: tuple[str, str] | None = None) -> None:
        super().__init__(path)
        self.settings_account = settings_account
        # argon2id with argon2-cffi's defaults (RFC 9106's second recommended profile: t=3, m=64 MiB, p=4).
        self._hasher = PasswordHasher()
        self._dummy_hash: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> UserStore:
        """The accounts of ``settings.database`` and, when both are set, ``auth_user``/``auth_password``."""
        account = None
        if settings.auth_user and settings.auth_password:
            account = (settings.auth_user, settings.auth_password)
        return cls(settings.database, account)

    # ------------------------------------------------------------------------------------------ changes

    def add(self, name: str, password: str) -> None:
        """Create an account; refused for an invalid or taken name and for a password out of bounds."""
        check_user_name(name)
        if self.settings_account and name == self.settings_account[0]:
            raise UserError(f"user {name!r} is the account set by RADASSIST_AUTH_USER; choose another name")
        if len(password) < MIN_PASSWORD_CHARS:
            raise UserError(f"the password must have at least {MIN_PASSWORD_CHARS} characters")
        if len(password) > MAX_PASSWORD_CHARS:
            raise UserError(f"the password must have at most {MAX_PASSWORD_CHARS} characters")
        hashed = self._hasher.hash(password)
        try:
            with self._writing() as conn:
                conn.execute(
                    text("INSERT INTO users (name, password_hash, created_at) VALUES (:name, :hash, :now)"),
                    {"name": name, "hash": hashed, "now": time.time()},
                )
        except UserError as exc:
            if isinstance(exc.__cause__, IntegrityError):
                raise UserError(f"user {name!r} exists already (remove it first to set a new password)") from exc
            raise
        logger.info("user account added")

    def remove(self, name: str) -> None:
        """Delete an account; :class:`UserError` when there is none by that name."""
        if self.settings_account and name == self.settings_account[0]:
            raise UserError(
                f"user {name!r} comes from the settings: unset RADASSIST_AUTH_USER and RADASSIST_AUTH_PASSWORD"
            )
        with self._writing() as conn:
            deleted = conn.execute(text("DELETE FROM users WHERE name = :name"), {"name": name}).rowcount
        if not deleted:
            raise UserError(f"no user {name!r}")
        logger.info("user account removed")

    # ------------------------------------------------------------------------------------------ reading

    def list(self) -> list[UserInfo]:
        """Every account, by name; the settings' account (if any) first."""
        with self._reading() as conn:
            rows = conn.execute(text("SELECT name, created_at FROM users ORDER BY name")).fetchall()
        found = [UserInfo(name, created, "database") for name, created in rows]
        if self.settings_account:
            found.insert(0, UserInfo(self.settings_account[0], None, "settings"))
        return found

    def exists(self, name: str) -> bool:
        """Whether ``name`` can log in (an account in the table or the settings' one)."""
        if self.settings_account and name == self.settings_account[0]:
            return True
        return self._hash_of(name) is not None

    def has_accounts(self) -> bool:
        """Whether anyone can log in at all."""
        if self.settings_account:
            return True
        with self._reading() as conn:
            return conn.execute(text("SELECT 1 FROM users LIMIT 1")).fetchone() is not None

    def verify(self, name: str, password: str) -> bool:
        """Whether ``password`` is ``name``'s; False for an unknown name, which costs as long as a wrong password."""
        if self.settings_account and name == self.settings_account[0]:
            return hmac.compare_digest(password.encode("utf-8"), self.settings_account[1].encode("utf-8"))
        if len(password) > MAX_PASSWORD_CHARS:
            return False
        hashed = self._hash_of(name)
        if hashed is None:
            self._spend_a_verification(password)  # no faster "no": timing must not tell which names exist
            return False
        try:
            self._hasher.verify(hashed, password)
        except VerifyMismatchError:
            return False
        except (VerificationError, InvalidHashError):
            logger.warning("a stored password hash could not be checked (damaged or unknown format)")
            return False
        if self._hasher.check_needs_rehash(hashed):  # stronger parameters since it was stored
            self._store_hash(name, self._hasher.hash(password))
        return True

    def _hash_of(self, name: str) -> str | None:
        with self._reading() as conn:
            row = conn.execute(text("SELECT password_hash FROM users WHERE name = :name"), {"name": name}).fetchone()
        return None if row is None else str(row[0])

    def _store_hash(self, name: str, hashed: str) -> None:
        try:
            with self._writing() as conn:
                conn.execute(
                    text("UPDATE users SET password_hash = :hash WHERE name = :name"), {"hash": hashed, "name": name}
                )
        except UserError as exc:  # the log-in still succeeds; the old hash stays valid
            logger.warning("a password hash could not be upgraded: %s", type(exc.__cause__).__name__)

    def _spend_a_verification(self, password: str) -> None:
        if self._dummy_hash is None:
            self._dummy_hash = self._hasher.hash("radassist: not an account")
        try:
            self._hasher.verify(self._dummy_hash, password)
        except VerificationError:
            pass
