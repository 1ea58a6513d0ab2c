"""Kubeconfig loading for the Kubernetes adapter: found as kubectl finds it, read within bounds.

The file is the explicit path, else each file of ``$KUBECONFIG`` (merged as kubectl merges them:
the first definition of a name wins, and the first ``current-context``), else ``~/.kube/config``.
Files are parsed by :mod:`opsctl.yamlsafe` (no alias bombs, no deep nesting, at most 4 MiB), and
relative certificate/key/token file paths are resolved against the file that names them; the
selected context is then handed to the client's own ``KubeConfigLoader`` (auth providers, exec
plugins, client certificates) with a fresh ``Configuration``: nothing global is touched, so two
environments may talk to two clusters in one process. The selected user's token, password and
client key are registered with :mod:`opsctl.redact` before anything can fail, so no error shows
them. Every problem is a :class:`~opsctl.errors.UsageError` (exit 2).
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opsctl import redact, yamlsafe
from opsctl.errors import ConfigError, UsageError
from opsctl.integrations.retry import truncate
from opsctl.secrets import check_secret

MAX_BYTES = 4 * 1024 * 1024
_HINT = "set integrations.kubernetes.kubeconfig (or $KUBECONFIG) to a kubeconfig file"
_FIX = "fix the kubeconfig, or point integrations.kubernetes.kubeconfig (or $KUBECONFIG) at another"
_SECTIONS = (("clusters", "cluster"), ("contexts", "context"), ("users", "user"))
_FILE_KEYS = ("certificate-authority", "client-certificate", "client-key", "tokenFile")
_SECRET_KEYS = ("token", "password", "client-key-data")
_PROVIDER_SECRETS = ("id-token", "refresh-token", "access-token", "client-secret")


@dataclass(frozen=True)
class Cluster:
    """The selected context: its name, server URL, default namespace and a ready ``ApiClient``."""

    context: str
    server: str
    namespace: str | None
    api_client: Any


def _shown(value: object) -> str:
    """A name from the file, quoted and cut to one short line (it may be anything)."""
    return truncate(repr(value))


def kubeconfig_paths(explicit: str | None) -> list[Path]:
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise UsageError(f"kubeconfig {path} does not exist", _HINT)
        return [path]
    listed = os.environ.get("KUBECONFIG", "")
    if listed.strip():
        paths = [Path(p).expanduser() for p in listed.split(os.pathsep) if p.strip()]
        found = [p for p in paths if p.is_file()]
        if not found:
            raise UsageError(f"no file named in $KUBECONFIG exists ({truncate(listed)})", _HINT)
        return found
    default = Path("~/.kube/config").expanduser()
    if not default.is_file():
        raise UsageError(f"no kubeconfig: {default} does not exist and $KUBECONFIG is not set", _HINT)
    return [default]


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"cannot read kubeconfig {path}: {exc.strerror or type(exc).__name__}", _HINT) from None
    if len(data) > MAX_BYTES:
        raise UsageError(f"kubeconfig {path} is larger than {MAX_BYTES // (1024 * 1024)} MiB", _FIX)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"kubeconfig {path} is not UTF-8 text", _FIX) from None
    try:
        root = yamlsafe.compose(text, str(path))
        document = yamlsafe.construct(root, text, str(path)) if root is not None else None
    except ConfigError as exc:
        raise UsageError(f"kubeconfig {exc.problems[0]}", _FIX) from None
    if not isinstance(document, dict):
        raise UsageError(f"kubeconfig {path} is not a kubeconfig (a mapping of clusters, contexts and users)", _FIX)
    return document


def merge(documents: list[tuple[Path, dict[str, Any]]]) -> dict[str, Any]:
    """One kubeconfig from several, relative file paths made absolute."""
    merged: dict[str, Any] = {name: [] for name, _ in _SECTIONS}
    current = ""
    for path, document in documents:
        if not current and isinstance(document.get("current-context"), str):
            current = document["current-context"]
        for section, inner in _SECTIONS:
            entries = document.get(section) or []
            if not isinstance(entries, list):
                raise UsageError(f"kubeconfig {path}: {section} must be a list", _FIX)
            for index, entry in enumerate(entries):
                if (
                    not isinstance(entry, dict)
                    or not isinstance(entry.get("name"), str)
                    or not isinstance(entry.get(inner) or {}, dict)
                ):
                    raise UsageError(f"kubeconfig {path}: {section}[{index}] needs a name and a {inner} mapping", _FIX)
                if any(e["name"] == entry["name"] for e in merged[section]):
                    continue
                body = dict(entry.get(inner) or {})
                for key in _FILE_KEYS:
                    value = body.get(key)
                    if isinstance(value, str) and value and not os.path.isabs(value):
                        body[key] = str(path.parent / value)
                merged[section].append({"name": entry["name"], inner: body})
    merged["current-context"] = current
    return merged


def _named(merged: dict[str, Any], section: str, inner: str, name: str) -> dict[str, Any] | None:
    return next((e[inner] for e in merged[section] if e["name"] == name), None)


def _register_user_secrets(user: dict[str, Any], name: str) -> None:
    for key in _SECRET_KEYS:
        if isinstance(user.get(key), str):
            redact.register(user[key])
    if isinstance(user.get("client-key-data"), str):
        try:
            redact.register(base64.b64decode(user["client-key-data"]).decode("utf-8", "replace"))
        except ValueError:
            pass
    provider = user.get("auth-provider")
    config = provider.get("config") if isinstance(provider, dict) else None
    if isinstance(config, dict):
        for key in _PROVIDER_SECRETS:
            if isinstance(config.get(key), str):
                redact.register(config[key])
    for key in ("client-key", "tokenFile"):
        if isinstance(user.get(key), str):
            try:
                with open(user[key], "rb") as handle:
                    redact.register(handle.read(MAX_BYTES).decode("utf-8", "replace"))
            except OSError:
                pass  # the loader reports a missing file
    if isinstance(user.get("token"), str):
        check_secret(user["token"], f"the token of kubeconfig user {_shown(name)}")


def load(kubeconfig: str | None, context: str | None) -> Cluster:
    """The ``ApiClient`` for ``context`` (default: the current context) of the kubeconfig."""
    paths = kubeconfig_paths(kubeconfig)
    where = ", ".join(str(p) for p in paths)
    merged = merge([(p, _read(p)) for p in paths])
    names = [e["name"] for e in merged["contexts"]]
    chosen = context or merged["current-context"]
    known = f"its contexts: {', '.join(names)}" if names else "it defines no context"
    if not chosen:
        raise UsageError(
            f"kubeconfig {where} has no current-context", f"name one in integrations.kubernetes.context; {known}"
        )
    settings = _named(merged, "contexts", "context", chosen)
    if settings is None:
        raise UsageError(f"context {_shown(chosen)} is not in kubeconfig {where}", known)
    cluster = _named(merged, "clusters", "cluster", str(settings.get("cluster")))
    if cluster is None or not isinstance(cluster.get("server"), str) or not cluster["server"].strip():
        raise UsageError(
            f"kubeconfig context {_shown(chosen)}: its cluster {_shown(settings.get('cluster'))} has no server", _FIX
        )
    server = cluster["server"].strip().rstrip("/")
    if not server.lower().startswith(("http://", "https://")):
        raise UsageError(
            f"kubeconfig context {_shown(chosen)}: server {truncate(server)!r} is not an http(s) URL", _FIX
        )
    user_name = settings.get("user")
    user = _named(merged, "users", "user", str(user_name)) if user_name else None
    if user is not None:
        _register_user_secrets(user, str(user_name))
    namespace = settings.get("namespace")
    return Cluster(chosen, server, namespace if isinstance(namespace, str) else None, _client(merged, chosen))


def _client(merged: dict[str, Any], context: str) -> Any:
    import kubernetes
    from kubernetes.config.config_exception import ConfigException
    from kubernetes.config.kube_config import KubeConfigLoader

    from opsctl import __version__

    configuration = kubernetes.client.Configuration()
    try:
        loader = KubeConfigLoader(  # type: ignore[no-untyped-call]  # the client's loader has no annotations
            config_dict=merged, active_context=context, config_base_path=""
        )
        loader.load_and_set(configuration)  # type: ignore[no-untyped-call]
    except ConfigException as exc:
        raise UsageError(redact.redact(f"kubeconfig context {_shown(context)}: {truncate(str(exc))}"), _FIX) from None
    except (KeyError, TypeError, ValueError, AttributeError, OSError) as exc:
        problem = truncate(str(exc)) or type(exc).__name__
        raise UsageError(redact.redact(f"kubeconfig context {_shown(context)} is unusable: {problem}"), _FIX) from None
    bearer = configuration.api_key.get("BearerToken")
    if isinstance(bearer, str):  # also a token from a tokenFile or an exec plugin
        redact.register(bearer)
        scheme, _, value = bearer.partition(" ")
        # A token file ends with a newline, which kubectl trims and this client does not: it would
        # make an illegal header, and http.client's error quotes the header.
        value = check_secret(value, f"the token of kubeconfig context {_shown(context)}")
        normalized = f"{scheme} {value}"
        configuration.api_key["BearerToken"] = normalized
        if getattr(loader, "token", None) == bearer:  # the refresh hook writes it back before each request
            loader.token = normalized
    configuration.retries = False  # no hidden retries: opsctl's loop decides, within its budget
    client = kubernetes.client.ApiClient(configuration)
    client.user_agent = f"opsctl/{__version__} kubernetes-python/{kubernetes.__version__}"
    return client
