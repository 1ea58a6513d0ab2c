"""Operations that change real systems: steps with a plan and an undo, run by one runner.

    from opsctl.operations.model import Operation, Step
    from opsctl.operations.runner import execute

    def plan(run):
        return [Step("shift 5%", "PATCH HTTPRoute api", target="prod-eu/platform", apply=..., compensate=...)]

    result = execute(ctx, Operation("deploy canary", service, params, lock="deploy"), plan)

Modules: ``model`` (steps, operations, results, states), ``runner`` (execute: lock, run record,
takeover), ``drive`` (applying and compensating the steps), ``run`` (the handle steps receive),
``signals``, ``progress`` (the port engines report through), ``audit`` (started/outcome
records), ``views`` (``opsctl runs``).  Nothing is imported here,
so that importing one of them stays cheap.
"""
