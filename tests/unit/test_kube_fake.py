"""The Kubernetes API fake, driven by the official ``kubernetes`` client through a kubeconfig.

Typed calls make the client deserialise the fake's answers into its models, so a wrongly shaped
answer fails here; ``_preload_content=False`` calls look at the JSON as sent.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import urllib3
from kubernetes.client import ApiException

from tests.fakes.kube import KubeFake
from tests.fakes.kube_config import write_kubeconfig
from tests.fakes.kube_patch import PatchError, SelectorError, json_patch, parse_selector, selector_matches

NS = "prod"
GATEWAY = ("gateway.networking.k8s.io", "v1")


def deployment(name: str = "api", labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    selector = {"app": name}
    body: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels if labels is not None else {"app": name}},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": {**selector, "track": "stable"}},
                "spec": {
                    "containers": [
                        {"name": "app", "image": f"{name}:1", "env": [{"name": "A", "value": "1"}], "args": ["x"]},
                        {"name": "sidecar", "image": "proxy:1"},
                    ]
                },
            },
        },
    }
    body["spec"].update(spec)
    return body


def route(name: str = "api") -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name},
        "spec": {
            "parentRefs": [{"name": "gateway"}],
            "rules": [{"backendRefs": [{"name": name, "port": 80, "weight": 100}]}],
        },
    }


@pytest.fixture
def kube() -> Iterator[KubeFake]:
    with KubeFake() as fake:
        yield fake


@pytest.fixture
def api(kube: KubeFake, tmp_path: Path) -> Iterator[Any]:
    """An ApiClient loaded from a kubeconfig, with urllib3's retries off so faults show as they are."""
    path = write_kubeconfig(tmp_path / "kubeconfig", {"prod-eu": kube})
    configuration = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(str(path), "prod-eu", client_configuration=configuration, persist_config=False)
    configuration.retries = False
    client = kubernetes.client.ApiClient(configuration)
    yield client
    client.close()


@pytest.fixture
def apps(api: Any) -> Any:
    return kubernetes.client.AppsV1Api(api)


@pytest.fixture
def core(api: Any) -> Any:
    return kubernetes.client.CoreV1Api(api)


@pytest.fixture
def custom(api: Any) -> Any:
    return kubernetes.client.CustomObjectsApi(api)


def raw(response: Any) -> Any:
    return json.loads(response.data)


def status_of(excinfo: pytest.ExceptionInfo[ApiException]) -> dict[str, Any]:
    body = json.loads(excinfo.value.body)
    assert body["kind"] == "Status" and body["status"] == "Failure"
    assert body["code"] == excinfo.value.status
    return dict(body)


# ------------------------------------------------------------------------------------------
# create / get / list
# ------------------------------------------------------------------------------------------


def test_create_sets_server_fields_and_answers_201(kube: KubeFake, apps: Any) -> None:
    before = kube.resource_version
    created = raw(apps.create_namespaced_deployment(NS, deployment(), _preload_content=False))
    meta = created["metadata"]
    assert meta["namespace"] == NS and meta["generation"] == 1
    assert meta["uid"] and meta["creationTimestamp"].endswith("Z")
    assert int(meta["resourceVersion"]) == before + 1 == kube.resource_version
    assert created["status"] == {}
    assert created["spec"]["revisionHistoryLimit"] == 10  # defaulted by the server
    assert kube.requests_to("POST")[-1].status == 201

    typed = apps.read_namespaced_deployment("api", NS)
    assert typed.metadata.uid == meta["uid"] and typed.spec.template.spec.containers[0].image == "api:1"


def test_create_twice_is_409_already_exists(apps: Any) -> None:
    apps.create_namespaced_deployment(NS, deployment())
    with pytest.raises(ApiException) as excinfo:
        apps.create_namespaced_deployment(NS, deployment())
    status = status_of(excinfo)
    assert (status["code"], status["reason"]) == (409, "AlreadyExists")
    assert status["message"] == 'deployments.apps "api" already exists'
    assert status["details"] == {"name": "api", "group": "apps", "kind": "deployments"}


def test_get_missing_is_404_not_found(core: Any) -> None:
    with pytest.raises(ApiException) as excinfo:
        core.read_namespaced_service("nope", NS)
    status = status_of(excinfo)
    assert (status["reason"], status["message"]) == ("NotFound", 'services "nope" not found')


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("tier=web", {"a", "b"}),
        ("tier==web,env=prod", {"a"}),
        ("tier!=web", {"c", "d"}),  # includes d, which has no tier at all
        ("env in (prod, staging)", {"a", "b", "c"}),
        ("env notin (prod)", {"b", "d"}),
        ("tier", {"a", "b", "c"}),
        ("!tier", {"d"}),
        ("tier=web,env in (staging),!canary", {"b"}),
        ("", {"a", "b", "c", "d"}),
    ],
)
def test_list_honours_label_selectors(kube: KubeFake, apps: Any, selector: str, expected: set[str]) -> None:
    labels = {
        "a": {"tier": "web", "env": "prod"},
        "b": {"tier": "web", "env": "staging"},
        "c": {"tier": "db", "env": "prod", "canary": "yes"},
        "d": {},
    }
    for name, extra in labels.items():
        apps.create_namespaced_deployment(NS, deployment(name, labels=extra))
    apps.create_namespaced_deployment("other", deployment("e", labels={"tier": "web"}))
    found = apps.list_namespaced_deployment(NS, label_selector=selector or None)
    assert {d.metadata.name for d in found.items} == expected
    assert kube.requests_to("GET")[-1].param("labelSelector") == (selector or None)


def test_list_items_have_no_kind_and_all_namespaces_work(apps: Any) -> None:
    apps.create_namespaced_deployment(NS, deployment("a"))
    apps.create_namespaced_deployment("other", deployment("b"))
    listed = raw(apps.list_namespaced_deployment(NS, _preload_content=False))
    assert listed["kind"] == "DeploymentList" and listed["metadata"]["resourceVersion"]
    assert [i["metadata"]["name"] for i in listed["items"]] == ["a"]
    assert "kind" not in listed["items"][0]
    everywhere = apps.list_deployment_for_all_namespaces()
    assert sorted(d.metadata.name for d in everywhere.items) == ["a", "b"]
    by_field = apps.list_namespaced_deployment(NS, field_selector="metadata.name=a")
    assert [d.metadata.name for d in by_field.items] == ["a"]


def test_bad_selector_is_400(apps: Any) -> None:
    with pytest.raises(ApiException) as excinfo:
        apps.list_namespaced_deployment(NS, label_selector="tier in (web")
    assert status_of(excinfo)["reason"] == "BadRequest"


# ------------------------------------------------------------------------------------------
# patch, replace, subresources
# ------------------------------------------------------------------------------------------


def test_strategic_merge_patch_merges_containers_by_name(kube: KubeFake, apps: Any) -> None:
    apps.create_namespaced_deployment(NS, deployment())
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "api:2", "args": ["y"]}]}}}}
    patched = apps.patch_namespaced_deployment("api", NS, patch)  # the client's default for a dict body
    assert kube.requests_to("PATCH")[-1].content_type == "application/strategic-merge-patch+json"
    containers = {c.name: c for c in patched.spec.template.spec.containers}
    assert set(containers) == {"app", "sidecar"}
    assert containers["app"].image == "api:2" and containers["app"].args == ["y"]
    assert [e.name for e in containers["app"].env] == ["A"]  # untouched fields stay
    assert patched.metadata.generation == 2


def test_strategic_merge_patch_merges_env_by_name_and_deletes(apps: Any) -> None:
    apps.create_namespaced_deployment(NS, deployment())
    env = [{"name": "B", "value": "2"}, {"name": "A", "$patch": "delete"}]
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "app", "env": env}]}}}}
    patched = apps.patch_namespaced_deployment("api", NS, patch)
    app = next(c for c in patched.spec.template.spec.containers if c.name == "app")
    assert [(e.name, e.value) for e in app.env] == [("B", "2")]


def test_merge_patch_replaces_lists(kube: KubeFake, apps: Any) -> None:
    apps.create_namespaced_deployment(NS, deployment())
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "api:3"}]}}}}
    patched = apps.patch_namespaced_deployment("api", NS, patch, _content_type="application/merge-patch+json")
    assert [c.name for c in patched.spec.template.spec.containers] == ["app"]
    assert kube.requests_to("PATCH")[-1].body == patch


def test_json_patch(kube: KubeFake, apps: Any) -> None:
    apps.create_namespaced_deployment(NS, deployment())
    ops = [
        {"op": "test", "path": "/spec/replicas", "value": 3},
        {"op": "replace", "path": "/spec/replicas", "value": 5},
        {"op": "add", "path": "/metadata/labels/track", "value": "stable"},
    ]
    patched = apps.patch_namespaced_deployment("api", NS, ops)
    assert kube.requests_to("PATCH")[-1].content_type == "application/json-patch+json"
    assert patched.spec.replicas == 5 and patched.metadata.labels["track"] == "stable"
    with pytest.raises(ApiException) as excinfo:
        apps.patch_namespaced_deployment("api", NS, [{"op": "test", "path": "/spec/replicas", "value": 3}])
    assert status_of(excinfo)["code"] == 422


def test_generation_follows_spec_and_no_op_keeps_version(apps: Any) -> None:
    first = apps.create_namespaced_deployment(NS, deployment())
    labelled = apps.patch_namespaced_deployment("api", NS, {"metadata": {"labels": {"x": "y"}}})
    assert labelled.metadata.generation == 1
    assert int(labelled.metadata.resource_version) > int(first.metadata.resource_version)
    same = apps.patch_namespaced_deployment("api", NS, {"metadata": {"labels": {"x": "y"}}})
    assert same.metadata.resource_version == labelled.metadata.resource_version
    scaled = apps.patch_namespaced_deployment("api", NS, {"spec": {"replicas": 4}})
    assert scaled.metadata.generation == 2


def test_replace_with_stale_version_is_409_conflict(kube: KubeFake, apps: Any) -> None:
    created = raw(apps.create_namespaced_deployment(NS, deployment(), _preload_content=False))
    apps.patch_namespaced_deployment("api", NS, {"spec": {"replicas": 4}})
    stale = dict(created, spec={**created["spec"], "replicas": 9})
    with pytest.raises(ApiException) as excinfo:
        apps.replace_namespaced_deployment("api", NS, stale)
    status = status_of(excinfo)
    assert status["reason"] == "Conflict" and "the object has been modified" in status["message"]
    assert kube.get_object("deployments", NS, "api")["spec"]["replicas"] == 4  # type: ignore[index]

    fresh = raw(apps.read_namespaced_deployment("api", NS, _preload_content=False))
    fresh["spec"]["replicas"] = 9
    replaced = apps.replace_namespaced_deployment("api", NS, fresh)
    assert replaced.spec.replicas == 9
    assert int(replaced.metadata.resource_version) > int(fresh["metadata"]["resourceVersion"])


def test_replace_missing_is_404(apps: Any) -> None:
    with pytest.raises(ApiException) as excinfo:
        apps.replace_namespaced_deployment("api", NS, deployment())
    assert status_of(excinfo)["reason"] == "NotFound"


def test_status_subresource_and_main_resource_ignore_each_other(apps: Any) -> None:
    apps.create_namespaced_deployment(NS, deployment())
    body = raw(apps.read_namespaced_deployment("api", NS, _preload_content=False))
    body["status"] = {"replicas": 3, "readyReplicas": 2, "observedGeneration": 1}
    body["spec"]["replicas"] = 7
    written = apps.replace_namespaced_deployment_status("api", NS, body)
    assert written.status.ready_replicas == 2 and written.spec.replicas == 3  # spec ignored
    body = raw(apps.read_namespaced_deployment("api", NS, _preload_content=False))
    body["status"]["readyReplicas"] = 0
    body["spec"]["replicas"] = 7
    written = apps.replace_namespaced_deployment("api", NS, body)
    assert written.spec.replicas == 7 and written.status.ready_replicas == 2  # status ignored
    read = apps.read_namespaced_deployment_status("api", NS)
    assert read.status.ready_replicas == 2


def test_scale_subresource(kube: KubeFake, apps: Any) -> None:
    apps.create_namespaced_deployment(NS, deployment())
    scale = apps.read_namespaced_deployment_scale("api", NS)
    assert (scale.spec.replicas, scale.status.selector) == (3, "app=api")
    apps.patch_namespaced_deployment_scale("api", NS, {"spec": {"replicas": 6}})
    stored = kube.get_object("deployments", NS, "api")
    assert stored is not None and stored["spec"]["replicas"] == 6 and stored["metadata"]["generation"] == 2


def test_validation_is_422_invalid(apps: Any) -> None:
    bad = deployment()
    bad["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    with pytest.raises(ApiException) as excinfo:
        apps.create_namespaced_deployment(NS, bad)
    status = status_of(excinfo)
    assert status["reason"] == "Invalid" and status["message"].startswith('Deployment.apps "api" is invalid:')
    apps.create_namespaced_deployment(NS, deployment())
    with pytest.raises(ApiException) as excinfo:
        apps.patch_namespaced_deployment(
            "api", NS, {"spec": {"selector": {"matchLabels": {"app": "api", "track": "stable"}}}}
        )
    assert "field is immutable" in status_of(excinfo)["message"]


def test_dry_run_changes_nothing(kube: KubeFake, apps: Any) -> None:
    apps.create_namespaced_deployment(NS, deployment(), dry_run="All")
    assert kube.get_object("deployments", NS, "api") is None


# ------------------------------------------------------------------------------------------
# services, pods, custom objects, delete
# ------------------------------------------------------------------------------------------


def test_service_create_patch_delete(kube: KubeFake, core: Any) -> None:
    body = {"metadata": {"name": "api"}, "spec": {"selector": {"app": "api"}, "ports": [{"port": 80}]}}
    created = core.create_namespaced_service(NS, body)  # kind/apiVersion filled in from the URL
    assert created.spec.cluster_ip and created.spec.ports[0].target_port == 80
    patched = core.patch_namespaced_service(
        "api", NS, {"spec": {"selector": {"track": "canary"}}}, _content_type="application/merge-patch+json"
    )
    assert patched.spec.selector == {"app": "api", "track": "canary"}
    assert patched.spec.cluster_ip == created.spec.cluster_ip
    answer = raw(core.delete_namespaced_service("api", NS, _preload_content=False))
    assert answer["kind"] == "Status" and answer["status"] == "Success"
    assert answer["details"]["name"] == "api" and answer["details"]["kind"] == "services"
    assert kube.get_object("services", NS, "api") is None
    with pytest.raises(ApiException) as excinfo:
        core.delete_namespaced_service("api", NS)
    assert excinfo.value.status == 404


def test_delete_precondition_mismatch_is_409(apps: Any) -> None:
    apps.create_namespaced_deployment(NS, deployment())
    options = kubernetes.client.V1DeleteOptions(preconditions=kubernetes.client.V1Preconditions(uid="other"))
    with pytest.raises(ApiException) as excinfo:
        apps.delete_namespaced_deployment("api", NS, body=options)
    assert status_of(excinfo)["reason"] == "Conflict"


def test_pods_create_and_list(core: Any) -> None:
    for name, track in (("api-1", "stable"), ("api-2", "canary")):
        pod = {"metadata": {"name": name, "labels": {"app": "api", "track": track}}, "spec": {"containers": [{"name": "app", "image": "api:1"}]}}  # fmt: skip
        assert core.create_namespaced_pod(NS, pod).status.phase == "Pending"
    pods = core.list_namespaced_pod(NS, label_selector="app=api,track=canary")
    assert [p.metadata.name for p in pods.items] == ["api-2"]


def test_custom_objects_httproute(kube: KubeFake, custom: Any) -> None:
    created = custom.create_namespaced_custom_object(*GATEWAY, NS, "httproutes", route())
    assert kube.requests_to("POST")[-1].status == 201
    assert created["kind"] == "HTTPRoute" and created["metadata"]["generation"] == 1
    weights = {"spec": {"rules": [{"backendRefs": [{"name": "api", "port": 80, "weight": 90}, {"name": "api-canary", "port": 80, "weight": 10}]}]}}  # fmt: skip
    patched = custom.patch_namespaced_custom_object(*GATEWAY, NS, "httproutes", "api", weights)
    assert kube.requests_to("PATCH")[-1].content_type == "application/merge-patch+json"
    assert [b["weight"] for b in patched["spec"]["rules"][0]["backendRefs"]] == [90, 10]
    assert patched["metadata"]["generation"] == 2
    listed = custom.list_namespaced_custom_object(*GATEWAY, NS, "httproutes")
    assert listed["items"][0]["kind"] == "HTTPRoute"  # custom resources keep kind in lists
    with pytest.raises(ApiException) as excinfo:
        custom.patch_namespaced_custom_object(
            *GATEWAY, NS, "httproutes", "api", weights, _content_type="application/strategic-merge-patch+json"
        )
    assert status_of(excinfo)["reason"] == "UnsupportedMediaType"
    with pytest.raises(ApiException) as excinfo:
        custom.get_namespaced_custom_object(*GATEWAY, NS, "httproutes", "nope")
    assert status_of(excinfo)["message"] == 'httproutes.gateway.networking.k8s.io "nope" not found'


def test_discovery_and_wrong_token(kube: KubeFake, api: Any, tmp_path: Path) -> None:
    assert kubernetes.client.VersionApi(api).get_code().git_version.startswith("v1.")
    groups = kubernetes.client.ApisApi(api).get_api_versions()
    assert "apps" in [g.name for g in groups.groups]
    path = write_kubeconfig(tmp_path / "bad", {"prod-eu": kube}, tokens={"prod-eu": "wrong"})
    with kubernetes.config.new_client_from_config(str(path), "prod-eu", persist_config=False) as bad:
        with pytest.raises(ApiException) as excinfo:
            kubernetes.client.AppsV1Api(bad).read_namespaced_deployment("api", NS)
    assert status_of(excinfo)["reason"] == "Unauthorized"


# ------------------------------------------------------------------------------------------
# helpers for tests (the controller's part)
# ------------------------------------------------------------------------------------------


def test_status_helpers(kube: KubeFake, apps: Any) -> None:
    apps.create_namespaced_deployment(NS, deployment())
    kube.set_deployment_status(NS, "api", ready=1, updated=3, observed_generation=1)
    status = apps.read_namespaced_deployment_status("api", NS).status
    assert (status.ready_replicas, status.updated_replicas, status.observed_generation) == (1, 3, 1)
    apps.patch_namespaced_deployment("api", NS, {"spec": {"replicas": 5}})
    kube.make_ready(NS, "api")
    status = apps.read_namespaced_deployment("api", NS).status
    assert (status.ready_replicas, status.available_replicas, status.observed_generation) == (5, 5, 2)
    assert {c.type for c in status.conditions} == {"Available", "Progressing"}


def test_create_replicaset_for(kube: KubeFake, apps: Any) -> None:
    owner = apps.create_namespaced_deployment(NS, deployment())
    first = kube.create_replicaset_for(NS, "api", 1)
    apps.patch_namespaced_deployment("api", NS, {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "api:2"}]}}}})  # fmt: skip
    second = kube.create_replicaset_for(NS, "api", 2)
    assert first["metadata"]["name"] != second["metadata"]["name"]
    listed = apps.list_namespaced_replica_set(NS, label_selector="app=api,track=stable")
    by_revision = {rs.metadata.annotations["deployment.kubernetes.io/revision"]: rs for rs in listed.items}
    assert set(by_revision) == {"1", "2"}
    ref = by_revision["2"].metadata.owner_references[0]
    assert (ref.kind, ref.name, ref.uid, ref.controller) == ("Deployment", "api", owner.metadata.uid, True)
    assert by_revision["1"].spec.template.spec.containers[0].image == "api:1"
    assert by_revision["2"].spec.template.metadata.labels["pod-template-hash"]
    current = apps.read_namespaced_deployment("api", NS)
    assert current.metadata.annotations["deployment.kubernetes.io/revision"] == "2"


# ------------------------------------------------------------------------------------------
# faults and recorded requests
# ------------------------------------------------------------------------------------------


def test_injected_status_once_then_normal(kube: KubeFake, apps: Any) -> None:
    apps.create_namespaced_deployment(NS, deployment())
    kube.inject(method="GET", path=r"/deployments/api$", status=503)
    with pytest.raises(ApiException) as excinfo:
        apps.read_namespaced_deployment("api", NS)
    assert status_of(excinfo)["reason"] == "ServiceUnavailable"
    assert apps.read_namespaced_deployment("api", NS).metadata.name == "api"
    assert kube.requests_to("GET")[0].fault == "status 503 on GET /deployments/api$"
    assert kube.pending_faults == []


def test_injected_conflict_on_put_only(kube: KubeFake, apps: Any) -> None:
    created = raw(apps.create_namespaced_deployment(NS, deployment(), _preload_content=False))
    kube.inject(method="PUT", path="/deployments/api", status=409, times=2)
    apps.patch_namespaced_deployment("api", NS, {"spec": {"replicas": 2}})  # PATCH is not affected
    for _ in range(2):
        with pytest.raises(ApiException) as excinfo:
            apps.replace_namespaced_deployment("api", NS, created)
        assert status_of(excinfo)["reason"] == "Conflict"
    with pytest.raises(ApiException) as excinfo:  # now the real 409: the version is stale
        apps.replace_namespaced_deployment("api", NS, created)
    assert [r.fault is not None for r in kube.requests_to("PUT")] == [True, True, False]


def test_delay_longer_than_timeout(kube: KubeFake, apps: Any) -> None:
    kube.inject(method="GET", delay=3.0)
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        apps.list_namespaced_deployment(NS, _request_timeout=0.3)


def test_dropped_connection_after_processing(kube: KubeFake, apps: Any) -> None:
    kube.inject(method="POST", drop=True, process=True)
    with pytest.raises(urllib3.exceptions.ProtocolError):
        apps.create_namespaced_deployment(NS, deployment())
    assert kube.get_object("deployments", NS, "api") is not None  # created, but the client never heard
    assert kube.requests_to("POST")[0].status is None


def test_requests_are_recorded(kube: KubeFake, apps: Any) -> None:
    apps.create_namespaced_deployment(NS, deployment(), field_manager="opsctl")
    apps.patch_namespaced_deployment("api", NS, {"spec": {"replicas": 1}}, _content_type="application/merge-patch+json")
    post, patch = kube.requests_to("POST")[0], kube.requests_to("PATCH")[0]
    assert (post.method, post.path, post.param("fieldManager")) == (
        "POST",
        f"/apis/apps/v1/namespaces/{NS}/deployments",
        "opsctl",
    )
    assert post.body["metadata"]["name"] == "api" and post.raw_body.startswith(b"{")
    assert patch.content_type == "application/merge-patch+json"
    assert post.header("authorization") == f"Bearer {kube.token}"
    assert (patch.path, patch.body, patch.status) == (f"/apis/apps/v1/namespaces/{NS}/deployments/api", {"spec": {"replicas": 1}}, 200)  # fmt: skip


# ------------------------------------------------------------------------------------------
# the fake's own algorithms, where the client cannot reach every case
# ------------------------------------------------------------------------------------------


def test_selector_parser() -> None:
    reqs = parse_selector("example.com/tier in (a,b), !gone, n>3")
    assert selector_matches(reqs, {"example.com/tier": "a", "n": "4"})
    assert not selector_matches(reqs, {"example.com/tier": "a", "n": "2"})
    assert not selector_matches(reqs, {"example.com/tier": "a", "n": "4", "gone": ""})
    for bad in ("a in ()", "=b", "a==b==c", "a in (b"):
        with pytest.raises(SelectorError):
            parse_selector(bad)


def test_json_patch_operations() -> None:
    doc = {"a": [1, 2], "b": {"c": 1}}
    moved = json_patch(
        doc, [{"op": "move", "from": "/b/c", "path": "/a/-"}, {"op": "copy", "from": "/a/0", "path": "/d"}]
    )
    assert moved == {"a": [1, 2, 1], "b": {}, "d": 1} and doc == {"a": [1, 2], "b": {"c": 1}}
    with pytest.raises(PatchError):
        json_patch(doc, [{"op": "remove", "path": "/nope"}])
    with pytest.raises(PatchError):
        json_patch(doc, [{"op": "replace", "path": "/a/5", "value": 0}])
