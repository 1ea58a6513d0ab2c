"""Plays the cluster's controllers for deploy tests, against :class:`~tests.fakes.kube.KubeFake`.

No kube-controller-manager runs here, so a thread does what it would: a Deployment whose pod
template changed gets a new ReplicaSet with the next revision (``kubectl rollout undo`` reads
those), and its status catches up with its spec (ready) — unless the test holds it back
(``hold``: never ready; ``deadline``: progress deadline exceeded).  It also plays the gateway:
HTTPRoutes get ``Accepted``/``ResolvedRefs`` True in their status, unless ``reject`` names them.
"""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any

from tests.fakes.kube import KubeFake


class Controller:
    def __init__(self, fake: KubeFake, *, interval: float = 0.05) -> None:
        self.fake, self.interval = fake, interval
        self.hold: set[tuple[str, str]] = set()  # (namespace, name): pods never become ready
        self.deadline: set[tuple[str, str]] = set()  # progress deadline exceeded
        self.reject: set[tuple[str, str]] = set()  # HTTPRoutes the gateway refuses
        self._templates: dict[tuple[str, str], str] = {}
        self._revisions: dict[tuple[str, str], int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="kube-controller", daemon=True)

    def start(self) -> Controller:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def __enter__(self) -> Controller:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.tick()
            except Exception:  # an object deleted under us: the next tick sees the new state
                continue

    def tick(self) -> None:
        for dep in self.fake.objects("deployments"):
            self._deployment(dep)
        for route in self.fake.objects("httproutes"):
            self._route(route)

    def _deployment(self, dep: dict[str, Any]) -> None:
        meta = dep["metadata"]
        key = (meta["namespace"], meta["name"])
        digest = hashlib.sha256(json.dumps(dep["spec"].get("template", {}), sort_keys=True).encode()).hexdigest()
        if self._templates.get(key) != digest:
            self._templates[key] = digest
            self._revisions[key] = self._revisions.get(key, 0) + 1
            self.fake.create_replicaset_for(*key, self._revisions[key])
            dep = self.fake.get_object("deployments", *key) or dep
        generation = dep["metadata"].get("generation", 1)
        status = dep.get("status", {}) or {}
        wanted = int(dep["spec"].get("replicas", 1))
        if key in self.deadline:
            if not any(c.get("reason") == "ProgressDeadlineExceeded" for c in status.get("conditions", []) or []):
                self.fake.set_deployment_status(
                    *key, observed_generation=generation, ready=0, updated=0,
                    conditions=[{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                                 "message": f'ReplicaSet "{key[1]}" has timed out progressing.'}],
                )  # fmt: skip
            return
        if key in self.hold:
            if status.get("observedGeneration") != generation:
                self.fake.set_deployment_status(*key, observed_generation=generation, ready=0, updated=0)
            return
        ready = status.get("observedGeneration") == generation and status.get("readyReplicas") == wanted
        if not ready or status.get("updatedReplicas") != wanted:
            self.fake.make_ready(*key)

    def _route(self, route: dict[str, Any]) -> None:
        meta = route["metadata"]
        key = (meta["namespace"], meta["name"])
        ok = "False" if key in self.reject else "True"
        generation = meta.get("generation", 1)
        parents = (route.get("status") or {}).get("parents") or []
        if (
            parents
            and parents[0].get("conditions", [{}])[0].get("observedGeneration") == generation
            and all(c.get("status") == ok for c in parents[0].get("conditions", []))
        ):
            return
        conditions = [
            {"type": kind, "status": ok, "reason": kind if ok == "True" else "Refused", "observedGeneration": generation,
             "message": "accepted by the test gateway" if ok == "True" else "refused by the test gateway"}
            for kind in ("Accepted", "ResolvedRefs")
        ]  # fmt: skip
        parent = {"parentRef": {"name": "gateway"}, "controllerName": "tests/gateway", "conditions": conditions}
        self.fake.set_status("httproutes", *key, {"parents": [parent]}, replace=True)
