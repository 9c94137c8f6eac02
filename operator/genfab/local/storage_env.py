"""How a local run reaches `spec.storage`: the endpoint, region and addressing the operator gives
stage Pods, and the credentials from the environment or from the named secret kept on this machine.

A cluster reads `spec.storage.secretRef` from a Kubernetes Secret; locally the same name is looked
up in a secrets folder (`--secrets`, `GENFAB_SECRETS_DIR`, default `~/.config/genfab/secrets`):
`NAME/` with one file per key (how Kubernetes mounts a Secret) or `NAME.env` with `KEY=VALUE` lines.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from genfab.api.common import Storage
from genfab.contract.names import CREDENTIAL_KEYS
from genfab.sequencing import CannotRun, storage_env

ENV_SECRETS_DIR = "GENFAB_SECRETS_DIR"
DEFAULT_SECRETS_DIR = "~/.config/genfab/secrets"
MAX_SECRET_BYTES = 64 << 10
"""A credential is a few hundred bytes (a session token a few KiB); larger is not a secret file."""


def secrets_dir(option: str | None, environ: Mapping[str, str]) -> Path:
    return Path(option or environ.get(ENV_SECRETS_DIR) or DEFAULT_SECRETS_DIR).expanduser()


def _read_small(path: Path) -> str:
    if path.stat().st_size > MAX_SECRET_BYTES:
        raise CannotRun(f"{path}: larger than {MAX_SECRET_BYTES // 1024} KiB, not a secret file")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise CannotRun(f"{path}: not UTF-8 text") from None


def read_secret(folder: Path, name: str) -> dict[str, str] | None:
    """The credential keys of secret `name` in `folder`, or None when there is no such secret."""
    keys = [key for key, _ in CREDENTIAL_KEYS]
    as_dir, as_env = folder / name, folder / f"{name}.env"
    try:
        if as_dir.is_dir():
            return {key: _read_small(as_dir / key).strip() for key in keys if (as_dir / key).is_file()}
        if as_env.is_file():
            values: dict[str, str] = {}
            for number, line in enumerate(_read_small(as_env).splitlines(), 1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                key, sep, value = line.removeprefix("export ").partition("=")
                if not sep:
                    raise CannotRun(f"{as_env}:{number}: expected KEY=VALUE")
                if key.strip() in keys:
                    values[key.strip()] = value.strip().strip("'\"")
            return values
    except OSError as exc:
        raise CannotRun(f"secret {name!r} in {folder}: {exc.strerror or exc}") from None
    return None


def local_environment(storage: Storage | None, environ: Mapping[str, str], folder: Path) -> tuple[dict[str, str],
                                                                                                     str | None]:
    """(the environment of this run's storage clients and shard processes, a one-line note or None).

    `spec.storage`'s endpoint settings win over the `GENFAB_S3_*` variables, as in a cluster. With a
    `secretRef`, its secret file's keys replace any `AWS_*` credentials of the environment; without
    the file, the environment's credentials (if any) are used and the note says so: an `s3://` output
    that cannot be reached then falls back to a local folder, as without `spec.storage`."""
    env = {**environ, **storage_env(storage)}
    if storage is None or storage.secret_ref is None:
        return env, None
    name = storage.secret_ref.name
    secret = read_secret(folder, name)
    required = [key for key, optional in CREDENTIAL_KEYS if not optional]
    if secret is None:
        where = (f"no {folder}/{name}/ or {folder}/{name}.env here (one file per key, or KEY=VALUE lines; "
                 f"--secrets or {ENV_SECRETS_DIR} choose the folder)")
        if all(environ.get(key) for key in required):
            return env, f"spec.storage.secretRef {name!r}: {where}; using the credentials of the environment"
        return env, f"spec.storage.secretRef {name!r}: {where}, and no {' or '.join(required)} in the environment"
    missing = [key for key in required if not secret.get(key)]
    if missing:
        raise CannotRun(f"spec.storage.secretRef.name: secret {name!r} in {folder} has no {', '.join(missing)}")
    for key, _ in CREDENTIAL_KEYS:
        env.pop(key, None)  # never mix the secret's keys with another identity's session token
    return {**env, **secret}, None
