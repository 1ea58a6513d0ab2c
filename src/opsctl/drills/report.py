"""A drill's report, made from its run record: who ran it, the timestamped timeline of every step
(and of every rollback step), RTO/RPO target against actual per system, observations, the overall
result and the follow-up actions — what a DR test report (NIST SP 800-84) asks for.

The result: ``failed`` when the drill did not finish (a step failed, it was interrupted) or missed
its RTO or RPO; ``passed_with_conditions`` when it met both but with a standing condition (an RPO
of 0 that asynchronous replication cannot guarantee, clients not moved by DNS, a verification
problem); ``passed`` otherwise."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from opsctl.errors import UsageError
from opsctl.timeutil import isoformat

if TYPE_CHECKING:
    from opsctl.context import Context
    from opsctl.state.base import Event, RunRecord

PREFIX = "drill "
PASSED, CONDITIONS, FAILED = "passed", "passed_with_conditions", "failed"
TITLES = {PASSED: "Passed", CONDITIONS: "Passed with conditions", FAILED: "Failed"}


def drill_type(kind: str) -> str:
    return kind[len(PREFIX) :] if kind.startswith(PREFIX) else kind


def result_of(run: RunRecord) -> str:
    data = run.data
    if run.state != "succeeded":
        return FAILED
    if not (data.get("rto") or {}).get("met") or not (data.get("rpo") or {}).get("met"):
        return FAILED
    return CONDITIONS if data.get("conditions") else PASSED


def _timeline(run: RunRecord, events: list[Event]) -> list[dict[str, Any]]:
    steps: dict[int, dict[str, Any]] = {}
    for number, planned in enumerate(run.plan):
        steps[number] = {"step": planned.get("name"), "action": planned.get("action"), "target": planned.get("target"),
                        "started_at": None, "finished_at": None, "seconds": None, "outcome": "not run"}  # fmt: skip
    undo: list[dict[str, Any]] = []
    starts: dict[int, datetime] = {}
    for e in events:
        found = e.data.get("index")
        if not isinstance(found, int) or found not in steps:
            continue
        index = found
        entry = steps[index]
        if e.type == "step_started":
            starts[index] = e.at
            entry.update(started_at=isoformat_ms(e.at), outcome="running")
        elif e.type in ("step_done", "step_failed"):
            entry.update(finished_at=isoformat_ms(e.at), outcome="done" if e.type == "step_done" else "failed")
            if index in starts:
                entry["seconds"] = round((e.at - starts[index]).total_seconds(), 3)
            if e.type == "step_failed":
                entry["error"] = e.data.get("error")
        elif e.type == "compensating":
            undo.append({"step": f"rollback: {entry['step']}", "action": "undo", "target": entry["target"],
                         "started_at": isoformat_ms(e.at), "finished_at": None, "seconds": None,
                         "outcome": "running", "_index": index, "_start": e.at})  # fmt: skip
        elif e.type in ("compensated", "compensation_failed"):
            for u in reversed(undo):
                if u["_index"] == index and u["outcome"] == "running":
                    u.update(finished_at=isoformat_ms(e.at), seconds=round((e.at - u["_start"]).total_seconds(), 3),
                             outcome="done" if e.type == "compensated" else "failed")  # fmt: skip
                    if e.type == "compensated" and entry["outcome"] in ("done", "failed", "running"):
                        entry["outcome"] = f"{entry['outcome']}, rolled back"
                    break
    for entry in steps.values():
        if entry["outcome"] == "running" and run.state != "running":
            entry["outcome"] = "interrupted"
    for u in undo:
        u.pop("_index"), u.pop("_start")
    return [*steps.values(), *undo]


def isoformat_ms(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat(timespec="milliseconds")


def build(ctx: Context, run: RunRecord) -> dict[str, Any]:
    data = run.data
    events = ctx.store.list_events("run", run.id)
    result = result_of(run)
    observations = list(data.get("observations") or [])
    if run.state != "succeeded" and run.message:
        observations.insert(0, f"the drill did not complete: {run.message}")
    if run.state != "succeeded" and data.get("failover_done"):
        observations.insert(1, "the failover was complete when the drill stopped: it was not turned back — the new"
                               " primary keeps serving and the old one stays fenced")  # fmt: skip
    follow_ups = list(data.get("follow_ups") or [])
    for key in ("rto", "rpo"):
        measured = data.get(key) or {}
        if run.state == "succeeded" and measured and not measured.get("met"):
            follow_ups.append(f"{key.upper()} target missed ({_secs(measured.get('actual_seconds'))} against "
                              f"{_secs(measured.get('target_seconds'))}): find what took the time, fix it, drill again")  # fmt: skip
    if run.state != "succeeded":
        follow_ups.append("fix what stopped the drill and run it again")
    empty = {"target_seconds": None, "actual_seconds": None, "met": False}
    rto, rpo = data.get("rto") or dict(empty), data.get("rpo") or dict(empty)
    return {
        "id": run.id, "type": drill_type(run.kind), "scenario": run.params.get("scenario"), "service": run.service,
        "env": run.env, "tier": data.get("tier", run.params.get("tier")),
        "ran_by": {"user": run.driver_user, "host": run.driver_host, "pid": run.driver_pid},
        "started_at": isoformat(run.started_at), "finished_at": isoformat(run.finished_at),
        "state": run.state, "result": result, "rto": rto, "rpo": rpo,
        "systems": data.get("systems") or [], "markers": data.get("marker_result"),
        "timeline": _timeline(run, events), "observations": observations, "follow_ups": follow_ups,
        "message": run.message,
    }  # fmt: skip


def find(ctx: Context, ident: str | None, *, last: bool) -> RunRecord:
    from opsctl.ids import normalise

    if ident:
        run = ctx.store.get_run(normalise(ident, "RUN"))
        if run is None or not run.kind.startswith(PREFIX):
            raise UsageError(f"no drill {ident!r}", "'opsctl drill status' lists the last ones; or use --last")
        return run
    if not last:
        raise UsageError("give a drill ID or --last")
    for run in ctx.store.list_runs(service=None, env=ctx.env, limit=500):
        if run.kind.startswith(PREFIX) and run.state != "running":
            return run
    raise UsageError(f"no drill has run in {ctx.env}", "run 'opsctl drill restore SERVICE' or 'drill failover'")


def _secs(value: Any) -> str:
    if value is None:
        return "-"
    seconds = float(value)
    if seconds < 120:
        return f"{seconds:.1f}s"
    return f"{seconds / 60:.1f}m" if seconds < 7200 else f"{seconds / 3600:.1f}h"


def _met(value: dict[str, Any]) -> str:
    return "PASS" if value.get("met") else "FAIL"


def _cell(text: Any) -> str:
    from opsctl.output import printable

    return printable(str("-" if text is None else text)).replace("|", "\\|")


def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown, for the DR file and the auditor."""
    r = report
    by = r["ran_by"]
    lines = [
        f"# DR drill report — {r['type']} drill of {r['service']} ({r['env']})", "",
        "| | |", "|---|---|",
        f"| Drill ID | {r['id']} |", f"| Type | {r['type']} |", f"| Scenario | {_cell(r.get('scenario'))} |",
        f"| Service / tier | {r['service']} / tier {_cell(r.get('tier'))} |",
        f"| Run by | {_cell(by.get('user'))}@{_cell(by.get('host'))} (pid {_cell(by.get('pid'))}) |",
        f"| Started | {_cell(r['started_at'])} |", f"| Finished | {_cell(r['finished_at'])} |",
        f"| Overall result | **{TITLES.get(r['result'], r['result'])}** |", "",
        "## Recovery objectives", "",
        "| System | RTO target | RTO actual | RPO target | RPO actual | Pass |", "|---|---|---|---|---|---|",
    ]  # fmt: skip
    systems = r.get("systems") or [{"system": r["service"]}]
    for system in systems:
        lines.append(
            f"| {_cell(system.get('system'))} | {_secs(r['rto']['target_seconds'])} | {_secs(r['rto']['actual_seconds'])}"
            f" | {_secs(r['rpo']['target_seconds'])} | {_secs(r['rpo']['actual_seconds'])}"
            f" | RTO {_met(r['rto'])}, RPO {_met(r['rpo'])} |"
        )
    markers = r.get("markers")
    if markers:
        lost = markers.get("lost") or []
        lines += ["", f"RPO measured with {markers.get('markers_written')} markers written one a second before the"
                      f" failure: {markers.get('markers_survived')} survived, {len(lost)} lost"
                      f"{' (#' + ', #'.join(str(s) for s in lost) + ')' if lost else ''}; {markers.get('basis')}."]  # fmt: skip
    lines += ["", "## Timeline", "", "| Step | Started | Finished | Duration | Outcome |", "|---|---|---|---|---|"]
    for t in r["timeline"]:
        outcome = t["outcome"] + (f": {t['error']}" if t.get("error") else "")
        lines.append(f"| {_cell(t['step'])} | {_cell(t['started_at'])} | {_cell(t['finished_at'])}"
                     f" | {_secs(t['seconds'])} | {_cell(outcome)} |")  # fmt: skip
    lines += ["", "## Observations", ""]
    lines += [f"- {_cell(o)}" for o in r["observations"]] or ["- none"]
    lines += ["", "## Follow-up actions", ""]
    lines += [f"- [ ] {_cell(f)}" for f in r["follow_ups"]] or ["- none"]
    return "\n".join(lines) + "\n"
