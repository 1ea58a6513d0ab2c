"""The Kubernetes adapter against the stateful API fake, through the real ``kubernetes`` client.

Nothing of opsctl is patched: kubeconfig files are written to disk, the HTTP is real, waits go
through the adapter's injectable ``sleep``/``monotonic`` (a clock that records each wait and moves
time forward instead of sleeping).
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from opsctl import redact
from opsctl.errors import ExitCode, OpsctlError, UpstreamError, UsageError
from opsctl.integrations.kube import MAX_CONFLICTS, AlreadyExistsError, ConflictError, KubeClient, NotFoundError
from tests.fakes.kube import KubeFake
from tests.fakes.kube_config import write_kubeconfig

NS = "prod"
TOKEN = "kube-Sup3r-s3cret-token-0123456789"
TRACEPARENT = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-01$")


class Clock:
    """``monotonic``/``sleep`` for the adapter: real time plus every recorded (skipped) wait."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []
        self._offset = 0.0

    def monotonic(self) -> float:
        return time.monotonic() + self._offset

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self._offset += seconds


def deployment(name: str = "api", track: str = "stable", image: str = "api:1") -> dict[str, Any]:
    labels = {"app": "api", "track": track}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": "api"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": image}, {"name": "proxy", "image": "envoy:1"}]},
            },
        },
    }


def service(name: str = "api") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": {"app": "api"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
    }


def httproute(name: str = "api") -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name},
        "spec": {"parentRefs": [{"name": "gateway"}], "rules": [{"backendRefs": [{"name": "api", "port": 80}]}]},
    }


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def kube() -> Iterator[KubeFake]:
    with KubeFake(token=TOKEN) as fake:
        yield fake


@pytest.fixture
def staging() -> Iterator[KubeFake]:
    with KubeFake(token="staging-cluster-token") as fake:
        yield fake


@pytest.fixture
def kubeconfig(tmp_path: Path, kube: KubeFake, staging: KubeFake) -> Path:
    return write_kubeconfig(tmp_path / "kubeconfig", {"prod-eu": kube, "staging-eu": staging}, current="prod-eu")


ClientFactory = Callable[..., KubeClient]


@pytest.fixture
def make_client(kubeconfig: Path, clock: Clock) -> Iterator[ClientFactory]:
    made: list[KubeClient] = []

    def make(context: str | None = "prod-eu", path: Path | str | None = None, **overrides: Any) -> KubeClient:
        kwargs: dict[str, Any] = {
            "budget": 5.0,
            "request_timeout": 2.0,
            "sleep": clock.sleep,
            "monotonic": clock.monotonic,
        }
        kwargs.update(overrides)
        client = KubeClient(str(path or kubeconfig), context, **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def client(make_client: ClientFactory) -> KubeClient:
    return make_client()


def assert_secret_free(error: BaseException | str) -> None:
    for text in (str(error), repr(error), *(getattr(error, "lines", lambda: [])())):
        assert TOKEN not in text and TOKEN[5:25] not in text


# ------------------------------------------------------------------------------------------
# every method
# ------------------------------------------------------------------------------------------


def test_deployments_round_trip_as_the_server_sends_them(kube: KubeFake, client: KubeClient) -> None:
    assert client.get_deployment(NS, "api") is None
    created = client.create_deployment(NS, deployment())
    assert created == kube.get_object("deployments", NS, "api")  # camelCase keys, strings, as sent
    assert created["metadata"]["resourceVersion"] and isinstance(created["metadata"]["creationTimestamp"], str)
    assert client.get_deployment(NS, "api") == created

    patched = client.patch_deployment(NS, "api", {"spec": {"replicas": 5}, "metadata": {"labels": {"x": "y"}}})
    assert patched["spec"]["replicas"] == 5 and patched["metadata"]["labels"] == {"app": "api", "x": "y"}
    assert patched["metadata"]["generation"] == 2
    request = kube.requests_to("PATCH")[-1]
    assert request.content_type == "application/merge-patch+json"
    assert request.body == {"spec": {"replicas": 5}, "metadata": {"labels": {"x": "y"}}}

    assert client.delete_deployment(NS, "api") is True
    assert client.get_deployment(NS, "api") is None
    assert client.delete_deployment(NS, "api") is False


def test_patch_is_a_merge_patch_lists_replace(kube: KubeFake, client: KubeClient) -> None:
    client.create_deployment(NS, deployment())
    containers = [{"name": "app", "image": "api:2"}]
    patched = client.patch_deployment(NS, "api", {"spec": {"template": {"spec": {"containers": containers}}}})
    assert patched["spec"]["template"]["spec"]["containers"] == containers


def test_patch_missing_is_not_found(client: KubeClient) -> None:
    with pytest.raises(NotFoundError) as excinfo:
        client.patch_deployment(NS, "nope", {"spec": {"replicas": 1}})
    assert "deployment prod/nope not found" in str(excinfo.value)


def test_list_replicasets_by_selector(kube: KubeFake, client: KubeClient) -> None:
    client.create_deployment(NS, deployment())
    client.create_deployment(NS, deployment("api-canary", track="canary"))
    kube.create_replicaset_for(NS, "api", 1)
    client.patch_deployment(NS, "api", {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "api:2"}]}}}})  # fmt: skip
    kube.create_replicaset_for(NS, "api", 2)
    kube.create_replicaset_for(NS, "api-canary", 1)

    stable = client.list_replicasets(NS, {"app": "api", "track": "stable"})
    assert kube.requests_to("GET")[-1].param("labelSelector") == "app=api,track=stable"
    revisions = sorted(rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] for rs in stable)
    assert revisions == ["1", "2"]
    assert all(rs["kind"] == "ReplicaSet" and rs["apiVersion"] == "apps/v1" for rs in stable)
    assert {rs["metadata"]["ownerReferences"][0]["name"] for rs in stable} == {"api"}
    assert len(client.list_replicasets(NS, {"app": "api"})) == 3
    assert client.list_replicasets("other", {"app": "api"}) == []
    with pytest.raises(UsageError):
        client.list_replicasets(NS, {"app": "api,track!=x"})


def test_services(kube: KubeFake, client: KubeClient) -> None:
    assert client.get_service(NS, "api") is None
    created = client.create_service(NS, service())
    assert created["spec"]["clusterIP"] and created == client.get_service(NS, "api")
    patched = client.patch_service(NS, "api", {"spec": {"selector": {"track": "canary"}}})
    assert patched["spec"]["selector"] == {"app": "api", "track": "canary"}

    def retarget(svc: dict[str, Any]) -> dict[str, Any]:
        svc["spec"]["selector"] = {"app": "api", "track": "stable"}
        return svc

    updated = client.update_service(NS, "api", retarget)
    assert updated["spec"]["selector"] == {"app": "api", "track": "stable"}
    assert kube.get_object("services", NS, "api")["spec"]["selector"] == {"app": "api", "track": "stable"}  # type: ignore[index]


def test_httproutes(kube: KubeFake, client: KubeClient) -> None:
    assert client.get_httproute(NS, "api") is None
    created = client.create_httproute(NS, httproute())
    assert created["kind"] == "HTTPRoute" and created["metadata"]["generation"] == 1
    refs = [{"name": "api", "port": 80, "weight": 90}, {"name": "api-canary", "port": 80, "weight": 10}]
    patched = client.patch_httproute(NS, "api", {"spec": {"rules": [{"backendRefs": refs}]}})
    assert patched["spec"]["rules"][0]["backendRefs"] == refs and patched["metadata"]["generation"] == 2
    assert kube.requests_to("PATCH")[-1].path == f"/apis/gateway.networking.k8s.io/v1/namespaces/{NS}/httproutes/api"

    def all_stable(route: dict[str, Any]) -> dict[str, Any]:
        route["spec"]["rules"][0]["backendRefs"] = [{"name": "api", "port": 80, "weight": 100}]
        return route

    assert client.update_httproute(NS, "api", all_stable)["spec"]["rules"][0]["backendRefs"][0]["weight"] == 100
    assert client.get_httproute(NS, "api") == kube.get_object("httproutes", NS, "api")


def test_update_puts_back_with_the_version_read(kube: KubeFake, client: KubeClient) -> None:
    client.create_deployment(NS, deployment())
    read = client.get_deployment(NS, "api")
    assert read is not None

    def set_image(dep: dict[str, Any]) -> dict[str, Any]:
        dep["spec"]["template"]["spec"]["containers"][0]["image"] = "api:2"
        return dep

    updated = client.update_deployment(NS, "api", set_image)
    assert updated["spec"]["template"]["spec"]["containers"][0]["image"] == "api:2"
    assert updated["metadata"]["generation"] == 2
    put = kube.requests_to("PUT")[-1]
    assert put.body["metadata"]["resourceVersion"] == read["metadata"]["resourceVersion"]


def test_update_with_nothing_to_change_writes_nothing(kube: KubeFake, client: KubeClient) -> None:
    created = client.create_deployment(NS, deployment())
    assert client.update_deployment(NS, "api", lambda dep: None) == created
    assert kube.requests_to("PUT") == []


def test_update_missing_is_not_found(client: KubeClient) -> None:
    with pytest.raises(NotFoundError):
        client.update_deployment(NS, "nope", lambda dep: dep)


# ------------------------------------------------------------------------------------------
# conflicts
# ------------------------------------------------------------------------------------------


def test_update_survives_an_injected_conflict(kube: KubeFake, client: KubeClient, clock: Clock) -> None:
    client.create_deployment(NS, deployment())
    kube.clear_requests()
    kube.inject(method="PUT", path="/deployments/api$", status=409)

    def scale(dep: dict[str, Any]) -> dict[str, Any]:
        dep["spec"]["replicas"] = 4
        return dep

    assert client.update_deployment(NS, "api", scale)["spec"]["replicas"] == 4
    assert [(r.method, r.status) for r in kube.requests] == [("GET", 200), ("PUT", 409), ("GET", 200), ("PUT", 200)]
    assert clock.sleeps == []  # a conflict is answered by reading again, not by waiting


def test_update_rereads_after_a_concurrent_writer(kube: KubeFake, client: KubeClient) -> None:
    client.create_deployment(NS, deployment())
    seen: list[int] = []

    def add_one(dep: dict[str, Any]) -> dict[str, Any]:
        seen.append(dep["spec"]["replicas"])
        if len(seen) == 1:  # someone else scales it between our read and our write
            other = kube.get_object("deployments", NS, "api")
            assert other is not None
            other["spec"]["replicas"] = 10
            kube.put_object(other)
        dep["spec"]["replicas"] += 1
        return dep

    assert client.update_deployment(NS, "api", add_one)["spec"]["replicas"] == 11
    assert seen == [2, 10]


def test_update_gives_up_after_repeated_conflicts(kube: KubeFake, client: KubeClient) -> None:
    client.create_deployment(NS, deployment())
    kube.inject(method="PUT", status=409, times=MAX_CONFLICTS)
    with pytest.raises(ConflictError) as excinfo:
        client.update_deployment(NS, "api", lambda dep: dep)
    assert excinfo.value.exit_code == ExitCode.UPSTREAM
    assert "kept changing" in str(excinfo.value)
    assert len(kube.requests_to("PUT")) == MAX_CONFLICTS


def test_create_existing_is_already_exists(client: KubeClient) -> None:
    client.create_deployment(NS, deployment())
    with pytest.raises(AlreadyExistsError) as excinfo:
        client.create_deployment(NS, deployment())
    assert excinfo.value.exit_code == ExitCode.REFUSED
    assert "deployment prod/api already exists" in str(excinfo.value)


# ------------------------------------------------------------------------------------------
# retries
# ------------------------------------------------------------------------------------------


def test_server_error_once_then_success(kube: KubeFake, client: KubeClient, clock: Clock) -> None:
    client.create_deployment(NS, deployment())
    kube.inject(method="GET", status=500)
    assert client.get_deployment(NS, "api") is not None
    kube.inject(method="PATCH", status=503)
    assert client.patch_deployment(NS, "api", {"spec": {"replicas": 3}})["spec"]["replicas"] == 3
    assert clock.sleeps == [0.5, 0.5]


def test_throttled_waits_what_the_server_asks(kube: KubeFake, client: KubeClient, clock: Clock) -> None:
    kube.inject(method="GET", status=429, headers={"Retry-After": "2"})
    assert client.get_service(NS, "api") is None
    assert clock.sleeps == [2.0]


def test_create_retried_after_a_5xx_only_once_a_read_shows_it_absent(
    kube: KubeFake, client: KubeClient, clock: Clock
) -> None:
    kube.inject(method="POST", status=503)
    created = client.create_deployment(NS, deployment())
    assert created["metadata"]["name"] == "api"
    assert [(r.method, r.status) for r in kube.requests] == [("POST", 503), ("GET", 404), ("POST", 201)]


@pytest.mark.parametrize("fault", [{"drop": True}, {"status": 500}], ids=["answer-lost", "500-after-commit"])
def test_create_whose_answer_was_lost_is_resolved_by_reading(
    kube: KubeFake, client: KubeClient, fault: dict[str, Any]
) -> None:
    kube.inject(method="POST", process=True, **fault)
    created = client.create_deployment(NS, deployment())
    assert created == kube.get_object("deployments", NS, "api")
    assert [r.method for r in kube.requests] == ["POST", "GET"]


def test_delete_whose_answer_was_lost_reports_deleted(kube: KubeFake, client: KubeClient) -> None:
    client.create_deployment(NS, deployment())
    kube.inject(method="DELETE", drop=True, process=True)
    assert client.delete_deployment(NS, "api") is True
    assert kube.get_object("deployments", NS, "api") is None
    assert [r.status for r in kube.requests_to("DELETE")] == [None, 404]


def test_request_timeout_then_success(kube: KubeFake, make_client: ClientFactory) -> None:
    client = make_client(request_timeout=0.5)
    kube.inject(method="GET", delay=5.0)
    assert client.get_deployment(NS, "api") is None
    gets = kube.requests_to("GET")
    assert gets[0].fault == "delay 5.0s on GET *" and gets[0].status is None
    assert gets[-1].status == 404 and len(gets) >= 2  # more only if a loaded machine is slower than 0.5s


def test_api_down_is_upstream_error_within_the_budget(tmp_path: Path, clock: Clock, make_client: ClientFactory) -> None:
    down = KubeFake(token=TOKEN).start()
    url = down.url
    down.stop()
    path = write_kubeconfig(tmp_path / "down", {"prod-eu": url}, tokens={"prod-eu": TOKEN})
    client = make_client(path=path, budget=5.0)
    with pytest.raises(UpstreamError) as excinfo:
        client.get_deployment(NS, "api")
    message = str(excinfo.value)
    assert excinfo.value.exit_code == ExitCode.UPSTREAM
    assert "the Kubernetes API of context 'prod-eu' unreachable after" in message
    assert "connection refused" in message
    assert excinfo.value.hint and url in excinfo.value.hint
    assert len(clock.sleeps) >= 2 and sum(clock.sleeps) <= 5.0
    assert_secret_free(excinfo.value)


def test_tls_failure_is_not_retried(tmp_path: Path, kube: KubeFake, clock: Clock, make_client: ClientFactory) -> None:
    path = write_kubeconfig(
        tmp_path / "tls", {"prod-eu": kube.url.replace("http://", "https://")}, tokens={"prod-eu": TOKEN}
    )
    with pytest.raises(UpstreamError) as excinfo:
        make_client(path=path).get_deployment(NS, "api")
    assert "TLS failed" in str(excinfo.value) and excinfo.value.hint and "certificate-authority" in excinfo.value.hint
    assert clock.sleeps == []
    assert_secret_free(excinfo.value)


# ------------------------------------------------------------------------------------------
# errors
# ------------------------------------------------------------------------------------------


def test_forbidden_names_verb_and_resource(kube: KubeFake, client: KubeClient) -> None:
    client.create_deployment(NS, deployment())
    message = (
        'deployments.apps "api" is forbidden: User "opsctl" cannot patch resource "deployments" in API group "apps"'
    )
    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "reason": "Forbidden", "code": 403}  # fmt: skip
    kube.inject(method="PATCH", status=403, body=body)
    with pytest.raises(UpstreamError) as excinfo:
        client.patch_deployment(NS, "api", {"spec": {"replicas": 1}})
    text = str(excinfo.value)
    assert "does not allow to patch deployment prod/api (403 Forbidden)" in text and "cannot patch resource" in text
    assert len(kube.requests_to("PATCH")) == 1  # not retried


def test_invalid_object_is_usage_error_with_the_servers_message(client: KubeClient) -> None:
    bad = deployment()
    bad["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    with pytest.raises(UsageError) as excinfo:
        client.create_deployment(NS, bad)
    assert "(422 Invalid)" in str(excinfo.value)
    assert "`selector` does not match template `labels`" in str(excinfo.value)


def test_wrong_token_is_reported_without_the_token(tmp_path: Path, kube: KubeFake, make_client: ClientFactory) -> None:
    path = write_kubeconfig(tmp_path / "wrong", {"prod-eu": kube}, tokens={"prod-eu": TOKEN + "-old"})
    client = make_client(path=path)
    with pytest.raises(UpstreamError) as excinfo:
        client.get_deployment(NS, "api")
    assert "rejected the credentials" in str(excinfo.value)
    assert_secret_free(excinfo.value)
    assert_secret_free(repr(client))


def test_traceparent_on_every_request(kube: KubeFake, client: KubeClient) -> None:
    client.create_deployment(NS, deployment())
    client.get_deployment(NS, "api")
    values = [r.header("traceparent") or "" for r in kube.requests]
    assert len(values) == 2 and all(TRACEPARENT.match(v) for v in values)


# ------------------------------------------------------------------------------------------
# kubeconfig and contexts
# ------------------------------------------------------------------------------------------


def test_two_contexts_two_clusters(kube: KubeFake, staging: KubeFake, make_client: ClientFactory) -> None:
    prod, stage = make_client("prod-eu"), make_client("staging-eu")
    prod.create_deployment(NS, deployment(image="api:prod"))
    stage.create_deployment(NS, deployment(image="api:staging"))
    assert kube.get_object("deployments", NS, "api")["spec"]["template"]["spec"]["containers"][0]["image"] == "api:prod"  # type: ignore[index]
    assert (
        staging.get_object("deployments", NS, "api")["spec"]["template"]["spec"]["containers"][0]["image"]
        == "api:staging"
    )  # type: ignore[index]
    assert (prod.context, stage.context) == ("prod-eu", "staging-eu")
    assert prod.server == kube.url and stage.server == staging.url


def test_current_context_and_kubeconfig_env(
    tmp_path: Path, kube: KubeFake, staging: KubeFake, monkeypatch: pytest.MonkeyPatch, clock: Clock
) -> None:
    first = write_kubeconfig(tmp_path / "a", {"staging-eu": staging}, current="staging-eu")
    second = write_kubeconfig(tmp_path / "b", {"prod-eu": kube, "staging-eu": kube}, current="prod-eu")
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'missing'}:{first}:{second}")
    merged = KubeClient(None, None, sleep=clock.sleep, monotonic=clock.monotonic)
    assert (merged.context, merged.server) == ("staging-eu", staging.url)  # first file wins, like kubectl
    assert KubeClient(None, "prod-eu").server == kube.url
    monkeypatch.delenv("KUBECONFIG")
    home = Path.home() / ".kube"
    home.mkdir()
    (home / "config").write_text(second.read_text())
    assert KubeClient(None, None).context == "prod-eu"


ALIAS_BOMB = "a: &a [1,1,1,1,1,1,1,1,1,1]\n" + "".join(
    f"{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n"
    for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)


def usage_error(path: Path | None, context: str | None = "prod-eu") -> UsageError:
    with pytest.raises(UsageError) as excinfo:
        KubeClient(str(path) if path else None, context)
    assert excinfo.value.exit_code == ExitCode.USAGE
    return excinfo.value


def test_unknown_context_lists_the_known_ones(kubeconfig: Path) -> None:
    error = usage_error(kubeconfig, "prod-us")
    assert "context 'prod-us' is not in kubeconfig" in str(error) and error.hint == "its contexts: prod-eu, staging-eu"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("clusters: [\n  - name: x\n", "YAML syntax error"),
        ("- just\n- a list\n", "is not a kubeconfig"),
        ("", "is not a kubeconfig"),
        ("clusters: 3\n", "clusters must be a list"),
        ("contexts:\n- name: prod-eu\n  context: {cluster: c}\n", "its cluster 'c' has no server"),
        (
            "clusters:\n- name: c\n  cluster: {server: 'ftp://x'}\ncontexts:\n- name: prod-eu\n  context: {cluster: c}\n",
            "is not an http(s) URL",
        ),
        ("contexts: []\n", "has no current-context"),
        (ALIAS_BOMB, "values"),
        ("\xff\xfe", "not UTF-8"),
    ],
    ids=["syntax", "list", "empty", "clusters", "no-server", "scheme", "no-current", "alias-bomb", "binary"],
)
def test_bad_kubeconfig_is_usage_error(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "kubeconfig"
    path.write_bytes(content.encode("latin-1"))
    assert expected in str(usage_error(path, None if expected == "has no current-context" else "prod-eu"))


def test_missing_kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert "does not exist" in str(usage_error(tmp_path / "nope"))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "nope"))
    assert "no file named in $KUBECONFIG exists" in str(usage_error(None))
    monkeypatch.delenv("KUBECONFIG")
    assert "no kubeconfig" in str(usage_error(None))


def test_kubeconfig_secrets_stay_out_of_errors(tmp_path: Path, kube: KubeFake) -> None:
    path = tmp_path / "kubeconfig"
    write_kubeconfig(path, {"prod-eu": kube}, tokens={"prod-eu": TOKEN})
    path.write_text(path.read_text().replace(f"token: {TOKEN}", f'token: "{TOKEN}\\nsecond line"'))
    error = usage_error(path)
    assert "the token of kubeconfig user 'prod-eu' has 2 lines" in str(error)
    assert_secret_free(error)

    key_file = tmp_path / "client.key"
    key_file.write_text("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n")
    https = write_kubeconfig(tmp_path / "tls", {"prod-eu": "https://127.0.0.1:1"})
    text = https.read_text().replace(
        "user: {}", "user:\n    client-certificate: missing.crt\n    client-key: client.key"
    )
    https.write_text(text)
    error = usage_error(https)
    assert "missing.crt" in str(error)  # resolved next to the kubeconfig, reported by the client's loader
    assert redact.redact("key: MIIEvQIBADANBgkqhkiG9w0BAQEFAASC") == "key: ***"


def with_user(path: Path, user: dict[str, Any]) -> Path:
    config = yaml.safe_load(path.read_text())
    config["users"][0]["user"] = user
    path.write_text(yaml.safe_dump(config))
    return path


def test_token_file_next_to_the_kubeconfig(tmp_path: Path, kube: KubeFake, make_client: ClientFactory) -> None:
    (tmp_path / "creds").mkdir()
    (tmp_path / "creds" / "token").write_text(TOKEN + "\n")
    path = with_user(write_kubeconfig(tmp_path / "creds" / "config", {"prod-eu": kube}), {"tokenFile": "token"})
    assert Path.cwd() != path.parent  # relative to the kubeconfig, not to the working directory
    assert make_client(path=path).get_deployment(NS, "api") is None
    assert kube.requests[-1].header("Authorization") == f"Bearer {TOKEN}"
    assert redact.redact(f"t={TOKEN}") == "t=***"


def test_exec_plugin_token(tmp_path: Path, kube: KubeFake, make_client: ClientFactory) -> None:
    plugin = tmp_path / "plugin.py"
    credential = {"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential", "status": {"token": TOKEN}}
    plugin.write_text(f"import json\nprint(json.dumps({credential!r}))\n")
    exec_config = {"apiVersion": "client.authentication.k8s.io/v1", "command": sys.executable, "args": [str(plugin)]}
    path = with_user(write_kubeconfig(tmp_path / "config", {"prod-eu": kube}), {"exec": exec_config})
    client = make_client(path=path)
    assert client.create_deployment(NS, deployment())["metadata"]["name"] == "api"
    assert redact.redact(f"Authorization: Bearer {TOKEN}") == "Authorization: ***"


def test_timeouts_must_be_positive(kubeconfig: Path) -> None:
    with pytest.raises(UsageError):
        KubeClient(str(kubeconfig), "prod-eu", budget=0)


def test_errors_are_opsctl_errors(kube: KubeFake, client: KubeClient) -> None:
    """Every failure a caller can meet is an OpsctlError with one line of text."""
    kube.inject(status=418)
    with pytest.raises(OpsctlError) as excinfo:
        client.get_deployment(NS, "api")
    assert excinfo.value.exit_code == ExitCode.UPSTREAM and "418" in str(excinfo.value)
    assert "\n" not in str(excinfo.value)
