"""Kubeconfig files for tests: contexts pointing at :class:`~tests.fakes.kube.KubeFake` servers.

    write_kubeconfig(tmp_path / "kubeconfig", {"prod-eu": prod, "staging-eu": staging}, current="prod-eu")

Each context gets a cluster and a user of its own name: the cluster's ``server`` is the fake's
``http://127.0.0.1:PORT`` (or the URL given instead of a fake, e.g. a port nothing listens on), the
user's ``token`` the fake's token (or ``tokens[context]``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from tests.fakes.kube import KubeFake


def kubeconfig_dict(
    contexts: Mapping[str, KubeFake | str],
    *,
    current: str | None = None,
    namespace: str | None = None,
    tokens: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    clusters, users, entries = [], [], []
    for name, target in contexts.items():
        server = target.url if isinstance(target, KubeFake) else target
        token = (tokens or {}).get(name) or (target.token if isinstance(target, KubeFake) else None)
        clusters.append({"name": name, "cluster": {"server": server}})
        users.append({"name": name, "user": {"token": token} if token else {}})
        context: dict[str, Any] = {"cluster": name, "user": name}
        if namespace:
            context["namespace"] = namespace
        entries.append({"name": name, "context": context})
    config: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": clusters,
        "users": users,
        "contexts": entries,
    }
    if current is not None or contexts:
        config["current-context"] = current if current is not None else next(iter(contexts))
    return config


def write_kubeconfig(
    path: str | Path,
    contexts: Mapping[str, KubeFake | str],
    *,
    current: str | None = None,
    namespace: str | None = None,
    tokens: Mapping[str, str] | None = None,
) -> Path:
    """Write a kubeconfig with one context per entry; ``current`` defaults to the first one."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    config = kubeconfig_dict(contexts, current=current, namespace=namespace, tokens=tokens)
    target.write_text(yaml.safe_dump(config, sort_keys=False))
    target.chmod(0o600)
    return target
