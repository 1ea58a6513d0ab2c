"""The analysis step of a canary: bake, check as it goes, and decide.

During the bake the canary is checked every ``every`` (half the query window, at most the
interval): a failing check rolls back at once, so a spike is acted on within one interval of
Prometheus seeing it.  At the end of the bake the step must pass: inconclusive (no data, NaN,
too few requests) holds and re-measures; after ``inconclusive_limit`` inconclusive checks in a
row the canary is rolled back, or with ``--on-inconclusive pause`` the run is paused.  A request
from another terminal is acted on between checks: ``deploy promote`` ends the bake (``--full``
skips to 100 %), ``deploy rollback`` aborts.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from opsctl.deploy.steps import Aborted, AnalysisFailed
from opsctl.deploy.target import prometheus
from opsctl.operations.model import Pause
from opsctl.timeutil import format_duration, isoformat

if TYPE_CHECKING:
    from opsctl.context import Context
    from opsctl.deploy.target import Target
    from opsctl.operations.run import Run
    from opsctl.settings.deploy import AnalysisPolicy


def thresholds_for(ctx: Context, target: Target, policy: AnalysisPolicy) -> Any:
    from opsctl.deploy.analysis import Thresholds

    tier = ctx.settings.effective_tiers()[target.service.tier]
    return Thresholds(
        max_error_ratio=policy.max_error_ratio,
        error_ratio_factor=policy.error_ratio_factor,
        error_ratio_min_diff=policy.error_ratio_min_diff,
        p95_limit_ms=tier.p95_latency_ms,
        latency_factor=policy.latency_factor,
        latency_min_diff_ms=policy.latency_min_diff_ms,
        min_requests=policy.min_requests,
    )


def queries(target: Target, window: timedelta) -> dict[str, str]:
    from opsctl.deploy.analysis import queries_for

    overrides = target.service.prometheus.queries if target.service.prometheus else {}
    return dict(queries_for(target.name, f"{int(window.total_seconds())}s", overrides))


def summary(verdict: Any) -> str:
    parts = [
        f"{c.metric} canary {_v(c.canary)} stable {_v(c.stable)} limit {_v(c.limit)}: {c.result}"
        for c in verdict.checks
    ]
    return f"{verdict.result} — " + "; ".join(parts)


def reasons(verdict: Any, result: str) -> str:
    """The reasons of the checks that decided the verdict (each names values and limit)."""
    picked = [c for c in verdict.checks if c.result == result] or list(verdict.checks)
    return "; ".join(
        c.reason or f"{c.metric}: canary {_v(c.canary)}, stable {_v(c.stable)}, limit {_v(c.limit)}" for c in picked
    )


def _v(value: Any) -> str:
    if value is None:
        return "none"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


class Judge:
    def __init__(self, ctx: Context, target: Target, policy: AnalysisPolicy, interval: timedelta) -> None:
        self.ctx, self.target, self.policy, self.interval = ctx, target, policy, interval
        self.every = max(timedelta(seconds=1), min(interval, policy.window / 2))
        self.thresholds = thresholds_for(ctx, target, policy)
        self.queries = queries(target, policy.window)
        self.poll = max(0.2, min(1.0, ctx.settings.policy.deploy.poll.total_seconds()))

    def describe(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {
            "queries": self.queries,
            "thresholds": asdict(self.thresholds),
            "window": format_duration(self.policy.window),
            "every": format_duration(self.every),
            "inconclusive_limit": self.policy.inconclusive_limit,
        }

    def _requests(self, run: Run) -> str | None:
        for request in run.requests():
            action = request.get("action")
            if action == "abort":
                raise Aborted(f"rollback requested by {request.get('by')}")
            if action == "promote":
                run.note(f"promotion requested by {request.get('by')}" + (" (--full)" if request.get("full") else ""))
                if request.get("full"):
                    run.save(promote_full=True)
                return "promote"
        return None

    def run(self, run: Run, weight: int, on_inconclusive: str) -> dict[str, Any]:
        from opsctl.deploy.analysis import judge, measure

        if run.data.get("promote_full"):
            return {"skipped": "promoted with --full"}
        if run.data.get("promote_skip"):  # 'deploy promote' took over a paused rollout: this bake is decided
            run.save(promote_skip=False)
            return {"skipped": "promoted on request"}
        prom = prometheus(self.ctx, self.target.env)
        clock = self.ctx.clock
        deadline = clock() + self.interval
        next_check = clock() + self.every
        inconclusive = 0
        run.progress.status(f"baking {format_duration(self.interval)} at {weight}%")
        while True:
            if self._requests(run) == "promote":
                return {"skipped": "promoted on request"}
            now = clock()
            if now < next_check:
                run.sleep(min(self.poll, (next_check - now).total_seconds()))
                continue
            verdict = judge(measure(prom, self.queries), self.thresholds)
            run.save(analysis={**verdict.to_dict(), "step": weight, "at": isoformat(now)})
            run.progress.status(f"{weight}%: {summary(verdict)}")
            if verdict.result == "fail":
                raise AnalysisFailed(f"analysis failed at {weight}%: {reasons(verdict, 'fail')}")
            if now >= deadline:
                if verdict.result == "pass":
                    return dict(verdict.to_dict())
                inconclusive += 1
                run.note(
                    f"inconclusive at {weight}% ({inconclusive}/{self.policy.inconclusive_limit}): {reasons(verdict, 'inconclusive')}"
                )
                if inconclusive >= self.policy.inconclusive_limit:
                    why = f"analysis inconclusive {inconclusive} times in a row at {weight}%: {reasons(verdict, 'inconclusive')}"
                    if on_inconclusive == "pause":
                        name = self.target.name
                        raise Pause(why, f"'opsctl deploy promote {name}', 'opsctl deploy rollback {name}' or --resume")
                    raise AnalysisFailed(why)
            next_check = now + self.every
