"""`opsctl deploy canary` end to end: the real CLI, a fake cluster, the real Prometheus."""

from __future__ import annotations

from tests.deploy.conftest import DEP, World

CANARY = ("--yes", "-o", "json", "deploy", "canary")
FAST = ("--steps", "20,50,100", "--interval", "3s", "--skip-staging-check")


def test_a_healthy_canary_reaches_100_percent(world: World) -> None:
    result = world.run(*CANARY, world.name, "--image", "web:2", *FAST)
    assert result.code == 0, result.stderr
    status = result.json()
    assert status["state"] == "succeeded" and status["image"] == "web:2"
    assert status["weights"] == {"stable": 100.0, "canary": 0.0}
    assert status["analysis"]["result"] == "pass"
    assert world.image() == "web:2" and world.replicas(f"{DEP}-canary") == 0
    history = world.run("-o", "json", "deploy", "history", world.name).json()
    assert [h["state"] for h in history] == ["succeeded"]


def _timeline(world: World, run_id: str) -> list[dict[str, object]]:
    shown = world.run("-o", "json", "runs", "show", run_id)
    assert shown.code == 0, shown.stderr
    return list(shown.json()["timeline"])


def _steps_started(world: World, run_id: str) -> list[object]:
    return [e["data"]["step"] for e in _timeline(world, run_id) if e["event"] == "step_started"]  # type: ignore[index]


def _at(step: str):
    return lambda s: s["state"] == "running" and s["step"] == step


def test_an_error_spike_at_20_percent_is_rolled_back_before_50(world: World) -> None:
    proc = world.start(*CANARY, world.name, "--image", "web:2", *FAST)
    world.wait_status(_at("analyse 20%"))
    world.prom.set("canary", rps=40, error_ratio=0.5, latency_ms=80)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert "analysis failed at 20%" in err and "error_ratio" in err
    status = world.status()
    assert status["state"] == "rolled_back" and status["analysis"]["result"] == "fail"
    failed = [c for c in status["analysis"]["checks"] if c["result"] == "fail"]
    assert {c["metric"] for c in failed} >= {"error_ratio"} and failed[0]["canary"] > failed[0]["limit"]
    assert world.image() == "web:1" and world.replicas(f"{DEP}-canary") == 0
    assert status["weights"] == {"stable": 100.0, "canary": 0.0}
    assert "shift 50%" not in _steps_started(world, status["run_id"])
    assert [a["outcome"] for a in world.audit()] == ["started", "rolled_back"]


def test_a_latency_breach_is_rolled_back(world: World) -> None:
    world.prom.set("canary", rps=40, error_ratio=0.0, latency_ms=900)  # tier 1: p95 under 500 ms
    result = world.run(*CANARY, world.name, "--image", "web:2", *FAST)
    assert result.code == 1, result.stderr
    status = result.json()
    assert status["state"] == "rolled_back"
    assert any(c["metric"] == "p95_ms" and c["result"] == "fail" for c in status["analysis"]["checks"])
    assert world.image() == "web:1" and world.replicas(f"{DEP}-canary") == 0


def test_a_metric_that_returns_nothing_never_passes(world: World) -> None:
    world.prom.stop("canary")
    result = world.run(*CANARY, world.name, "--image", "web:2", *FAST)
    assert result.code == 1, result.stderr
    assert "inconclusive 2 times in a row at 20%" in result.stderr
    status = result.json()
    assert status["state"] == "rolled_back" and status["analysis"]["result"] == "inconclusive"
    assert world.image() == "web:1" and "shift 50%" not in _steps_started(world, status["run_id"])


def test_inconclusive_can_pause_then_a_human_promotes_from_another_terminal(world: World) -> None:
    world.prom.stop("canary")
    paused = world.run(*CANARY, world.name, "--image", "web:2", *FAST, "--on-inconclusive", "pause")
    assert paused.code == 1, paused.stderr
    status = paused.json()
    assert status["state"] == "paused" and status["step"] == "analyse 20%"
    assert world.replicas(f"{DEP}-canary") == 1  # nothing undone: the canary keeps its 20%
    refused = world.run(*CANARY, world.name, "--image", "web:3", *FAST)
    assert refused.code == 3 and "paused" in refused.stderr  # one rollout at a time
    world.healthy("canary")
    promoted = world.run("--yes", "-o", "json", "deploy", "promote", world.name)
    assert promoted.code == 0, promoted.stderr
    assert world.status()["state"] == "succeeded" and world.image() == "web:2"


def test_ctrl_c_mid_step_rolls_back_and_exits_130(world: World) -> None:
    import signal

    proc = world.start(*CANARY, world.name, "--image", "web:2", *FAST)
    world.wait_status(_at("analyse 20%"))
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    status = world.status()
    assert status["state"] == "interrupted" and status["weights"] == {"stable": 100.0, "canary": 0.0}
    assert world.image() == "web:1" and world.replicas(f"{DEP}-canary") == 0
    assert world.run("-o", "json", "locks").json() == []


def test_sigkill_then_rollback_from_a_second_process(world: World) -> None:
    proc = world.start(*CANARY, world.name, "--image", "web:2", *FAST, "--interval", "60s")
    world.wait_status(_at("analyse 20%"))
    proc.kill()
    world.started = None  # killed on purpose: its exit is not a failure to report
    proc.wait(timeout=10)
    orphan = world.wait_status(lambda s: s["state"] == "orphaned", timeout=30)
    assert world.replicas(f"{DEP}-canary") == 1  # the driver died with the canary at 20%
    rolled = world.run("--yes", "-o", "json", "deploy", "rollback", world.name)
    assert rolled.code == 0, rolled.stderr
    status = world.status()
    assert status["state"] == "rolled_back" and status["run_id"] == orphan["run_id"]
    assert world.replicas(f"{DEP}-canary") == 0 and world.image() == "web:1"
    takeover = [a for a in world.audit() if a["outcome"] == "takeover"]
    assert len(takeover) == 1 and f"pid {proc.pid}" in takeover[0]["message"]


def test_a_409_and_a_500_from_the_api_mid_rollout_are_survived(world: World) -> None:
    world.prod.inject(method="PATCH", path="/deployments/web-canary$", status=500, times=1)
    world.prod.inject(method="PUT", path="/deployments/web$", status=409, times=1)
    result = world.run(*CANARY, world.name, "--image", "web:2", *FAST)
    assert result.code == 0, result.stderr
    assert world.image() == "web:2" and result.json()["state"] == "succeeded"
    answered = [r for r in world.prod.requests if r.status in (409, 500)]
    assert {r.status for r in answered} == {409, 500}


def test_promote_and_rollback_from_a_second_terminal_while_the_driver_runs(world: World) -> None:
    proc = world.start(*CANARY, world.name, "--image", "web:2", "--steps", "20,50,100", "--interval", "60s",
                       "--skip-staging-check")  # fmt: skip
    world.wait_status(_at("analyse 20%"))
    asked = world.run("--yes", "-o", "json", "deploy", "promote", world.name, "--full")
    assert asked.code == 0, asked.stderr
    assert asked.json()["requested"] == "promote"
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert world.image() == "web:2" and world.status()["state"] == "succeeded"

    proc = world.start(*CANARY, world.name, "--image", "web:3", "--steps", "20,50,100", "--interval", "60s",
                       "--skip-staging-check")  # fmt: skip
    world.wait_status(_at("analyse 20%"))
    aborted = world.run("--yes", "-o", "json", "deploy", "rollback", world.name)
    assert aborted.code == 0 and aborted.json()["requested"] == "abort", aborted.stderr
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "rollback requested by" in err, err
    assert world.status()["state"] == "rolled_back" and world.image() == "web:2"


def test_pause_before_promote_holds_until_promoted(world: World) -> None:
    proc = world.start(*CANARY, world.name, "--image", "web:2", *FAST, "--pause-before-promote")
    world.wait_status(_at("promote 100%"))
    assert world.image() == "web:1"  # held before the promotion
    assert world.run("--yes", "deploy", "promote", world.name).code == 0
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert world.image() == "web:2"


def test_gateway_api_weights_move_on_the_httproute(world: World) -> None:
    world.write_config(traffic="{kind: gateway-api, route: web}")
    proc = world.start(*CANARY, world.name, "--image", "web:2", *FAST)
    world.wait_status(_at("analyse 20%"))
    route = world.prod.get_object("httproutes", "platform", "web")
    assert route is not None
    refs = route["spec"]["rules"][0]["backendRefs"]
    assert [(r["name"], r["weight"]) for r in refs] == [("web", 80), ("web-canary", 20)]
    assert world.prod.get_object("services", "platform", "web-canary") is not None
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    final = world.prod.get_object("httproutes", "platform", "web")
    assert final is not None and [(r["name"], r["weight"]) for r in final["spec"]["rules"][0]["backendRefs"]] == [
        ("web", 100)
    ]


def test_weights_the_replica_count_cannot_honour_are_refused(world: World) -> None:
    refused = world.run("--yes", "deploy", "canary", world.name, "--image", "web:2", "--skip-staging-check")
    assert refused.code == 3, refused.stderr
    assert "5% is 20%" in refused.stderr and "--allow-rounding" in refused.stderr
    planned = world.run("--dry-run", "-o", "json", "deploy", "canary", world.name, "--image", "web:2",
                        "--skip-staging-check", "--allow-rounding")  # fmt: skip
    assert planned.code == 0, planned.stderr
    shifts = [s for s in planned.json() if s["name"].startswith("shift")]
    assert shifts[0]["detail"]["expected"]["canary"] == 20.0  # the weight actually achieved is reported


def test_dry_run_sends_no_write_to_the_api(world: World) -> None:
    world.prod.clear_requests()
    planned = world.run("--dry-run", "-o", "json", "deploy", "canary", world.name, "--image", "web:2", *FAST)
    assert planned.code == 0, planned.stderr
    names = [s["name"] for s in planned.json()]
    assert names == ["canary deployment", "shift 20%", "analyse 20%", "shift 50%", "analyse 50%", "promote 100%"]
    analysis = planned.json()[2]["detail"]
    assert "error_ratio" in str(analysis["queries"]) and analysis["thresholds"]["p95_limit_ms"] == 500
    assert all(r.method == "GET" for r in world.prod.requests)
    assert world.run("-o", "json", "runs", "--all").json() == []


def test_staging_before_production(world: World) -> None:
    refused = world.run(
        "--yes", "deploy", "canary", world.name, "--image", "web:2", "--steps", "20,50,100", "--interval", "3s"
    )
    assert refused.code == 3, refused.stderr
    assert "has no succeeded deploy in staging" in refused.stderr and "no deploy in staging at all" in refused.stderr
    staged = world.run(
        "-e", "staging", *CANARY, world.name, "--image", "web:2", "--steps", "20,50,100", "--interval", "3s"
    )
    assert staged.code == 0, staged.stderr
    assert world.image(cluster="staging") == "web:2" and world.image() == "web:1"
    again = world.run("--dry-run", "deploy", "canary", world.name, "--image", "web:2", "--steps", "20,50,100")
    assert again.code == 0, again.stderr  # the staging check passes now
    other = world.run("--dry-run", "deploy", "canary", world.name, "--image", "web:3", "--steps", "20,50,100")
    assert other.code == 3 and "the last staging deploy" in other.stderr and "web:2" in other.stderr


def test_sigkill_then_resume_from_a_second_process_reaches_100(world: World) -> None:
    proc = world.start(*CANARY, world.name, "--image", "web:2", *FAST, "--interval", "6s")
    world.wait_status(_at("analyse 20%"))
    proc.kill()
    world.started = None  # killed on purpose: its exit is not a failure to report
    proc.wait(timeout=10)
    world.wait_status(lambda s: s["state"] == "orphaned", timeout=30)
    wrong = world.run(*CANARY, world.name, "--image", "web:9", "--resume", "--skip-staging-check")
    assert wrong.code == 2 and "rolls out web:2, not web:9" in wrong.stderr
    resumed = world.run(*CANARY, world.name, "--image", "web:2", "--resume", "--interval", "3s", "--skip-staging-check")
    assert resumed.code == 0, resumed.stderr
    assert "--steps/--interval are ignored" in resumed.stderr
    assert resumed.json()["state"] == "succeeded" and world.image() == "web:2"


def test_a_progress_deadline_exceeded_fails_the_step_and_rolls_back(world: World) -> None:
    world.controllers["prod"].deadline.add(("platform", f"{DEP}-canary"))
    result = world.run(*CANARY, world.name, "--image", "web:2", *FAST)
    assert result.code == 1, result.stderr
    assert "progress deadline exceeded" in result.stderr
    assert world.replicas(f"{DEP}-canary") == 0 and world.image() == "web:1"


def test_a_route_the_gateway_refuses_fails_the_step_and_rolls_back(world: World) -> None:
    world.write_config(traffic="{kind: gateway-api, route: web}")
    world.controllers["prod"].reject.add(("platform", "web"))
    result = world.run(*CANARY, world.name, "--image", "web:2", *FAST)
    assert result.code == 1, result.stderr
    assert "route condition Accepted is not True" in result.stderr
    assert world.replicas(f"{DEP}-canary") == 0


def test_production_asks_before_starting(world: World) -> None:
    refused = world.run("deploy", "canary", world.name, "--image", "web:2", *FAST)  # no terminal, no --yes
    assert refused.code == 3 and "confirmation needed" in refused.stderr
    assert world.prod.get_object("deployments", "platform", f"{DEP}-canary") is None


def test_kubernetes_or_prometheus_unreachable_before_any_change_is_exit_4(world: World) -> None:
    world.prod.stop()
    down = world.run(*CANARY, world.name, "--image", "web:2", *FAST, timeout=180)
    assert down.code == 4, down.stderr
    assert "Kubernetes" in down.stderr and "Traceback" not in down.stderr
    world.prod.start()
    world.config.write_text(world.config.read_text().replace(world.prom.server.url, "http://127.0.0.1:9"))
    no_prom = world.run(*CANARY, world.name, "--image", "web:2", *FAST, timeout=180)
    assert no_prom.code == 4, no_prom.stderr
    assert world.prod.get_object("deployments", "platform", f"{DEP}-canary") is None
