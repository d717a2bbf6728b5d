"""Who is asking: users, service accounts, sessions, API keys and run-scoped step tokens.

* Users log in with a password (hashed with scrypt, a memory-hard KDF from
  the standard library) and get a session token that expires. Repeated bad
  passwords for one name, or from one address, are refused with 429 for a
  while; the failures are rows in the database, so every worker sees them.
* Service accounts (CI, engine workers) have API keys, shown once when made
  and stored only as a SHA-256 hash (they are 256 random bits: a slow hash
  would add nothing but time to every request).
* A run token is minted for one run: its step processes hold it and nothing
  else. It stops working once its run has settled, plus a short leeway.

Roles, weakest first: ``runner`` (service accounts of engine workers: join
runs of stored deployments, and exchange the key for the run's token),
``viewer`` (read), ``editor`` (run pipelines, register components), ``admin``
(users, stacks, secrets).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa

from conveyor.exceptions import AuthenticationError, ConfigError, NotFoundError, PermissionDeniedError, StoreError
from conveyor.server import _schema as t
from conveyor.stores import RunStatus, new_id, now
from conveyor.stores.sql import SqlStore
from conveyor.stores.sql._engine import aware
from conveyor.stores.sql._schema import pipeline_runs

USER_ROLES = ("viewer", "editor", "admin")
"""Roles a person can have."""

SERVICE_ROLES = ("runner", "viewer", "editor", "admin")
"""Roles a service account can have (``runner``: engine workers that only start steps)."""

RANK = {"run": 0, "runner": 0, "viewer": 1, "editor": 2, "admin": 3}

SESSION_PREFIX = "cvs_"
API_KEY_PREFIX = "cvk_"
RUN_TOKEN_PREFIX = "cvr_"

# scrypt with N=2**15, r=8, p=1: 32 MiB and ~0.1 s per hash on a small machine.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**15, 8, 1
_DUMMY_HASH: str | None = None


def _who_statement() -> sa.Select[Any]:
    c, u, r = t.credentials, t.users, pipeline_runs
    return (
        sa.select(
            c.c.id,
            c.c.kind,
            c.c.run_id,
            c.c.expires,
            u.c.id.label("uid"),
            u.c.name,
            u.c.kind.label("uk"),
            u.c.role,
            r.c.status.label("run_status"),
            r.c.ended.label("run_ended"),
            r.c.name.label("run_name"),
        )
        .join(u, u.c.id == c.c.user_id)
        .outerjoin(r, r.c.id == c.c.run_id)
        .where(c.c.token_hash == sa.bindparam("token_hash"))
    )


# Every request runs it: one statement (credential, its user and, for a run token, its run), built once,
# so a request pays for a lookup by primary key rather than for building and keying a query.
_WHO = _who_statement()


class TooManyAttempts(AuthenticationError):
    """Too many failed logins: wait before trying again (HTTP 429)."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message, f"wait {retry_after} s, or ask an admin to check who is guessing")
        self.retry_after = retry_after


def hash_password(password: str) -> str:
    """``scrypt$N$r$p$salt$hash`` of a password (salted, memory-hard)."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, maxmem=64 * 1024 * 1024
    )
    b64 = base64.b64encode
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str | None) -> bool:
    """Whether ``password`` matches a hash from :func:`hash_password` (in constant time)."""
    global _DUMMY_HASH
    if stored is None:
        # Hash anyway: an unknown name must take as long as a wrong password.
        if _DUMMY_HASH is None:
            _DUMMY_HASH = hash_password("not a password")
        stored = _DUMMY_HASH
        password += "\x00"
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        found = hashlib.scrypt(
            password.encode("utf-8"),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=64 * 1024 * 1024,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(found, base64.b64decode(digest)) and not password.endswith("\x00")


def new_token(prefix: str) -> str:
    """A fresh random credential (256 bits)."""
    return prefix + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What the database keeps of a token."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class Principal:
    """The caller of a request.

    Attributes:
        user_id: the user or service account.
        name: its name.
        kind: ``user`` or ``service``.
        role: ``runner``, ``viewer``, ``editor`` or ``admin``; ``run`` for a run token.
        credential: ``session``, ``api_key`` or ``run``.
        credential_id: the credential's row (a session to end on logout).
        run_id: the run a run token is scoped to.
    """

    user_id: str
    name: str
    kind: str
    role: str
    credential: str
    credential_id: str
    run_id: str | None = None

    @property
    def is_run(self) -> bool:
        """Whether this is a step's run token."""
        return self.credential == "run"

    def require(self, role: str, what: str) -> None:
        """Refuse unless the caller has at least ``role`` (run tokens never pass).

        Raises:
            PermissionDeniedError: naming what was refused and the role it needs.
        """
        if self.is_run or RANK[self.role] < RANK[role]:
            who = f"the step token of run {self.run_id}" if self.is_run else f"{self.name} ({self.role})"
            raise PermissionDeniedError(f"{who} may not {what}", f"it needs the {role} role; ask an admin")


@dataclass(frozen=True)
class AuthSettings:
    """How long credentials live and how many failed logins are allowed."""

    session_hours: float = 24.0
    run_token_leeway: float = 60.0
    run_token_max_hours: float = 7 * 24.0
    login_window: float = 300.0
    login_attempts: int = 5


class Authenticator:
    """Users, credentials and failed logins in the server's database."""

    def __init__(self, store: SqlStore, settings: AuthSettings) -> None:
        self.store = store
        self.settings = settings

    # -- requests --------------------------------------------------------------------
    def authenticate(self, token: str | None) -> Principal:
        """The caller holding ``token``.

        Raises:
            AuthenticationError: no token, an unknown or revoked one, an expired
                session, or the token of a run that has ended.
        """
        if not token:
            raise AuthenticationError("this server needs a credential", "log in: conveyor login URL")
        with self.store.read() as conn:
            row = conn.execute(_WHO, {"token_hash": token_hash(token)}).first()
        if row is None:
            raise AuthenticationError("this server does not know the credential (revoked, or for another server)")
        stamp = now()
        if row.expires is not None and aware(row.expires) < stamp:
            what = "session" if row.kind == "session" else "credential"
            raise AuthenticationError(f"the {what} of {row.name!r} expired")
        if row.kind == "run":
            if row.run_status is None:
                raise AuthenticationError(f"the run of this step token ({row.run_id}) is gone")
            if row.run_status != RunStatus.RUNNING and (
                row.run_ended is None
                or aware(row.run_ended) + timedelta(seconds=self.settings.run_token_leeway) < stamp
            ):
                raise AuthenticationError(
                    f"the step token of run {row.run_name!r} ended with its run ({row.run_status})",
                    "a step token works only while its run runs; run the pipeline again",
                )
            return Principal(row.uid, row.name, row.uk, "run", "run", row.id, row.run_id)
        return Principal(row.uid, row.name, row.uk, row.role, row.kind, row.id)

    # -- logging in ------------------------------------------------------------------
    def login(self, username: str, password: str, address: str) -> tuple[str, datetime, Principal]:
        """A new session for a user whose password matches: ``(token, expires, principal)``.

        Raises:
            TooManyAttempts: too many failures for this name or address lately.
            AuthenticationError: a wrong name or password (the same message for both).
        """
        s = self.settings
        since = now() - timedelta(seconds=s.login_window)
        f = t.login_failures
        with self.store.read() as conn:
            by_name = conn.execute(
                sa.select(sa.func.count()).where(f.c.username == username, f.c.at > since)
            ).scalar_one()
            by_address = conn.execute(
                sa.select(sa.func.count()).where(f.c.address == address, f.c.at > since)
            ).scalar_one()
            user = conn.execute(sa.select(t.users).where(t.users.c.name == username)).first()
        if by_name >= s.login_attempts or by_address >= 4 * s.login_attempts:
            raise TooManyAttempts(
                f"too many failed logins for {username!r} in the last {s.login_window:g} s", int(s.login_window)
            )
        stored = user.password_hash if user is not None and user.kind == "user" else None
        matches = verify_password(password, stored)  # hashes even for an unknown name: the same time either way
        if user is None or not matches:
            with self.store.write() as conn:
                conn.execute(f.insert().values(username=username, address=address, at=now()))
            raise AuthenticationError(
                "wrong user name or password",
                f"check both; after {s.login_attempts} failures in {s.login_window:g} s logins are refused for a while",
            )
        with self.store.write() as conn:
            conn.execute(f.delete().where(f.c.username == username))
        expires = now() + timedelta(hours=s.session_hours)
        token = self._issue(user.id, "session", expires=expires)
        return token, expires, Principal(user.id, user.name, user.kind, user.role, "session", "")

    def logout(self, principal: Principal) -> None:
        """End the caller's session (API keys and run tokens are revoked by deleting them)."""
        if principal.credential == "session":
            with self.store.write() as conn:
                conn.execute(t.credentials.delete().where(t.credentials.c.id == principal.credential_id))

    def _issue(self, user_id: str, kind: str, *, run_id: str | None = None, expires: datetime | None = None) -> str:
        prefix = {"session": SESSION_PREFIX, "api_key": API_KEY_PREFIX, "run": RUN_TOKEN_PREFIX}[kind]
        token = new_token(prefix)
        with self.store.write() as conn:
            conn.execute(
                t.credentials.insert().values(
                    id=new_id(),
                    token_hash=token_hash(token),
                    kind=kind,
                    user_id=user_id,
                    run_id=run_id,
                    created=now(),
                    expires=expires,
                )
            )
        return token

    # -- run tokens ------------------------------------------------------------------
    def mint_run_token(self, principal: Principal, run_id: str) -> str:
        """A token scoped to one run, for its step processes.

        Editors and admins mint for any running run; a ``runner`` service
        account only for a run an engine started (one with a run key), which
        it joined first.

        Raises:
            PermissionDeniedError: a viewer, or a run token (tokens never mint tokens).
            NotFoundError: no such run.
            RunSettledError: the run ended more than the leeway ago.
        """
        from conveyor.exceptions import RunSettledError

        if principal.is_run:
            raise PermissionDeniedError("a step token may not mint tokens", "only the run's driver mints them")
        if principal.role not in ("runner", "editor", "admin"):
            principal.require("editor", "mint step tokens")
        r = pipeline_runs
        with self.store.read() as conn:
            run = conn.execute(
                sa.select(r.c.id, r.c.name, r.c.status, r.c.ended, r.c.run_key).where(
                    sa.or_(r.c.id == run_id, r.c.name == run_id)
                )
            ).first()
        if run is None:
            raise NotFoundError(f"no run {run_id!r}", "see `conveyor pipeline runs`")
        if principal.role == "runner" and run.run_key is None:
            raise PermissionDeniedError(
                f"runner {principal.name!r} may mint step tokens only for runs its engine started (a run key)",
                "give the run's driver an editor credential",
            )
        leeway = timedelta(seconds=self.settings.run_token_leeway)
        if run.status != RunStatus.RUNNING and (run.ended is None or aware(run.ended) + leeway < now()):
            raise RunSettledError(f"run {run.name!r} is already {run.status}: no step token is given for it")
        expires = now() + timedelta(hours=self.settings.run_token_max_hours)
        return self._issue(principal.user_id, "run", run_id=run.id, expires=expires)

    # -- users and service accounts --------------------------------------------------
    def create_user(self, name: str, role: str, password: str | None, *, kind: str = "user") -> dict[str, Any]:
        """Add a user (with a password) or a service account (without).

        Raises:
            ConfigError: an unknown role, or a role a kind cannot have.
            StoreError: the name is taken.
        """
        roles = USER_ROLES if kind == "user" else SERVICE_ROLES
        if role not in roles:
            raise ConfigError(f"unknown role {role!r}", f"roles: {', '.join(roles)}")
        if kind == "user" and not password:
            raise ConfigError("a user needs a password", "pass it on stdin: --password-stdin")
        with self.store.read() as conn:
            taken = conn.execute(sa.select(t.users.c.id).where(t.users.c.name == name)).first()
        if taken is not None:
            raise StoreError(f"a user or service account named {name!r} exists", "pick another name, or delete it")
        row = {
            "id": new_id(),
            "name": name,
            "kind": kind,
            "role": role,
            "password_hash": hash_password(password) if password else None,
            "created": now(),
        }
        try:
            with self.store.write() as conn:
                conn.execute(t.users.insert().values(**row))
        except sa.exc.IntegrityError:
            raise StoreError(f"a user or service account named {name!r} exists") from None
        return _user(row)

    def create_api_key(self, name: str) -> str:
        """A new API key for a service account (shown once: only its hash is kept).

        Raises:
            NotFoundError: no such service account.
        """
        user = self._find(name, kind="service")
        return self._issue(user.id, "api_key")

    def _find(self, name: str, *, kind: str | None = None) -> Any:
        with self.store.read() as conn:
            row = conn.execute(sa.select(t.users).where(t.users.c.name == name)).first()
        if row is None or (kind is not None and row.kind != kind):
            what = "service account" if kind == "service" else "user" if kind == "user" else "user or service account"
            raise NotFoundError(f"no {what} {name!r}")
        return row

    def list_users(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Users and service accounts, by name (never a password hash)."""
        stmt = sa.select(t.users).order_by(t.users.c.name)
        if kind is not None:
            stmt = stmt.where(t.users.c.kind == kind)
        with self.store.read() as conn:
            return [_user(r._asdict()) for r in conn.execute(stmt).all()]

    def delete_user(self, name: str, *, kind: str, by: Principal) -> None:
        """Delete a user or service account and revoke every credential it holds.

        Raises:
            NotFoundError: no such account.
            ConfigError: deleting yourself, or the last admin.
        """
        user = self._find(name, kind=kind)
        if user.id == by.user_id:
            raise ConfigError("you cannot delete yourself", "ask another admin")
        with self.store.write() as conn:
            if user.role == "admin" and user.kind == "user":
                admins = conn.execute(
                    sa.select(sa.func.count()).where(t.users.c.role == "admin", t.users.c.kind == "user")
                ).scalar_one()
                if admins <= 1:
                    raise ConfigError(f"{name!r} is the last admin", "make another admin first")
            conn.execute(t.credentials.delete().where(t.credentials.c.user_id == user.id))
            conn.execute(t.users.delete().where(t.users.c.id == user.id))

    def has_users(self) -> bool:
        """Whether any user exists (the first start creates the admin)."""
        with self.store.read() as conn:
            return conn.execute(sa.select(t.users.c.id).where(t.users.c.kind == "user").limit(1)).first() is not None


def _user(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": row["name"],
        "kind": row["kind"],
        "role": row["role"],
        "created": aware(row["created"]).astimezone(timezone.utc).isoformat(),
    }
