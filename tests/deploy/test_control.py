"""Blue/green, rollout undo, scale, and incidents that list the service's recent changes."""

from __future__ import annotations

from tests.deploy.conftest import DEP, World

FAST = ("--steps", "20,50,100", "--interval", "3s", "--skip-staging-check")


def _selector(world: World) -> dict[str, str]:
    service = world.prod.get_object("services", "platform", DEP)
    assert service is not None
    return dict(service["spec"]["selector"])


def test_bluegreen_switches_keeps_blue_then_scales_it_down_and_switches_back(world: World) -> None:
    result = world.run(
        "--yes", "-o", "json", "deploy", "bluegreen", world.name, "--image", "web:2", "--skip-staging-check"
    )
    assert result.code == 0, result.stderr
    assert result.json()["state"] == "succeeded"
    assert _selector(world) == {"app": "web", "slot": "green"}
    assert world.image(f"{DEP}-green") == "web:2" and world.replicas(f"{DEP}-green") == 4
    assert world.replicas(DEP) == 0 and world.image(DEP) == "web:1"  # blue kept, scaled down

    back = world.run("--yes", "-o", "json", "deploy", "rollback", world.name)
    assert back.code == 0, back.stderr
    assert _selector(world) == {"app": "web"} and world.replicas(DEP) == 4 and world.replicas(f"{DEP}-green") == 0
    assert world.status()["kind"] == "deploy rollback"

    # the next blue/green goes to the idle slot again (green), from the live blue
    again = world.run("--yes", "deploy", "bluegreen", world.name, "--image", "web:3", "--skip-staging-check")
    assert again.code == 0, again.stderr
    assert _selector(world) == {"app": "web", "slot": "green"} and world.image(f"{DEP}-green") == "web:3"


def test_bluegreen_switches_back_on_request_while_blue_is_kept(world: World) -> None:
    proc = world.start("--yes", "deploy", "bluegreen", world.name, "--image", "web:2", "--skip-staging-check")
    world.wait_status(lambda s: s["state"] == "running" and s["step"] == f"keep {DEP}")
    assert _selector(world) == {"app": "web", "slot": "green"}
    asked = world.run("--yes", "-o", "json", "deploy", "rollback", world.name)
    assert asked.code == 0 and asked.json()["requested"] == "abort", asked.stderr
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "switch-back requested" in err, err
    assert _selector(world) == {"app": "web"} and world.replicas(DEP) == 4 and world.replicas(f"{DEP}-green") == 0
    assert world.status()["state"] == "rolled_back"


def test_rollback_after_a_finished_rollout_undoes_to_the_previous_revision(world: World) -> None:
    done = world.run("--yes", "deploy", "canary", world.name, "--image", "web:2", *FAST)
    assert done.code == 0, done.stderr
    assert world.image() == "web:2"
    undone = world.run("--yes", "-o", "json", "deploy", "rollback", world.name)
    assert undone.code == 0, undone.stderr
    status = undone.json()
    assert status["kind"] == "deploy rollback" and status["state"] == "succeeded"
    assert status["image"] == "web:1" and world.image() == "web:1"
    assert world.dep()["spec"]["template"]["metadata"]["labels"].get("pod-template-hash") is None


def test_scale_up_is_a_confirmed_audited_run(world: World) -> None:
    refused = world.run("deploy", "scale", world.name, "--replicas", "6")  # production: confirmation, no terminal
    assert refused.code == 3 and "--yes" in refused.stderr
    scaled = world.run("--yes", "-o", "json", "deploy", "scale", world.name, "--replicas", "6")
    assert scaled.code == 0, scaled.stderr
    assert world.replicas(DEP) == 6
    assert [a["outcome"] for a in world.audit()] == ["refused", "started", "ok"]


def test_incidents_list_the_services_recent_changes_with_the_rollback_command(world: World) -> None:
    assert world.run("--yes", "deploy", "canary", world.name, "--image", "web:2", *FAST).code == 0
    declared = world.run("-o", "json", "incident", "declare", world.name, "--sev", "2", "--title", "5xx after deploy")
    assert declared.code == 0, declared.stderr
    [change] = declared.json()["changes"]
    assert change["kind"] == "deploy canary" and change["image"] == "web:2" and change["state"] == "succeeded"
    assert change["rollback"] == f"opsctl -e production deploy rollback {world.name}"
    table = world.run("incident", "declare", world.name, "--sev", "2", "--title", "latency after deploy")
    assert "roll back: opsctl -e production deploy rollback" in table.stderr
    ident = declared.json()["id"]
    shown = world.run("-o", "json", "incident", "show", ident).json()
    assert [c["run_id"] for c in shown["changes"]] == [change["run_id"]]
    postmortem = world.run("incident", "postmortem", ident).stdout
    assert "change: deploy canary web:2 (succeeded" in postmortem


def test_bluegreen_with_preview_analysis_never_switches_to_a_bad_green(world: World) -> None:
    world.write_config(preview=True)
    world.prom.set("canary", rps=40, error_ratio=0.5, latency_ms=80)  # green's pods carry track=canary
    result = world.run("--yes", "deploy", "bluegreen", world.name, "--image", "web:2", "--skip-staging-check")
    assert result.code == 1, result.stderr
    assert "analysis failed" in result.stderr
    assert _selector(world) == {"app": "web"} and world.replicas(f"{DEP}-green") == 0 and world.replicas(DEP) == 4
