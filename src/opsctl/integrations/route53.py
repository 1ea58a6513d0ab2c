"""AWS Route53 for the failover drill: the DNS name clients use, moved from the primary's value to
the secondary's (and back), waited on until the change is ``INSYNC``.

Two shapes of zone are understood.  A *simple* record (one plain record set of the name and type)
is UPSERTed to the other value.  *Failover* record sets (two record sets with ``SetIdentifier``,
``Failover: PRIMARY`` / ``SECONDARY``) are switched by swapping what they point at in one change
batch: both keep their identifiers and roles, each value takes its health check along.

:meth:`Route53.inspect` reads everything a preflight needs and lists, one readable line each,
every ``problem`` the drill must refuse on; it never raises for the record's state.  Every AWS
failure becomes one line (:class:`~opsctl.errors.UpstreamError`, exit 4, through
:func:`~opsctl.integrations.aws.aws_call`); a zone that cannot be told apart or a record that
cannot be switched is a :class:`~opsctl.errors.RefusedError` (exit 3)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opsctl.errors import RefusedError, UpstreamError
from opsctl.integrations.aws import aws_call

ROLES = ("PRIMARY", "SECONDARY")
SIDES = ("primary", "secondary")
MULTI_VALUE_TYPES = ("A", "AAAA")  # types whose configured value may list several addresses, comma-separated
_ESCAPE = re.compile(r"\\([0-7]{3})")  # Route53 lists e.g. "*" as "\052"


def _name(value: str) -> str:
    """A DNS name as compared here: octal escapes decoded, no trailing dot, lower case."""
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), value.strip()).rstrip(".").lower()


def _value(value: str) -> str:
    return value.strip().rstrip(".")


def _bare_id(value: str) -> str:
    """``/hostedzone/Z1``, ``/change/C1`` -> ``Z1``, ``C1``."""
    return value.rsplit("/", 1)[-1]


def _split(value: str, type: str) -> tuple[str, ...]:
    """A configured value as the record values it stands for (A/AAAA: comma-separated addresses)."""
    parts = value.split(",") if type in MULTI_VALUE_TYPES else [value]
    return tuple(v for v in (_value(p) for p in parts) if v)


def _key(values: tuple[str, ...] | list[str], type: str) -> frozenset[str]:
    """What two sets of values are compared by: order never matters, CNAME targets ignore case."""
    return frozenset(v.lower() if type == "CNAME" else v for v in values)


@dataclass(frozen=True)
class RecordSet:
    name: str  # FQDN without the trailing dot, lower case
    type: str  # "CNAME" | "A" | …
    ttl: int | None
    values: tuple[str, ...]  # ResourceRecords values, trailing dots stripped
    set_identifier: str | None
    failover: str | None  # "PRIMARY" | "SECONDARY" | None
    health_check_id: str | None
    alias: bool  # an AliasTarget record: the drill cannot switch those

    @classmethod
    def from_aws(cls, rr: dict[str, Any]) -> RecordSet:
        return cls(
            name=_name(str(rr.get("Name", ""))),
            type=str(rr.get("Type", "")),
            ttl=int(rr["TTL"]) if rr.get("TTL") is not None else None,
            values=tuple(_value(str(r.get("Value", ""))) for r in rr.get("ResourceRecords") or []),
            set_identifier=rr.get("SetIdentifier") or None,
            failover=rr.get("Failover") or None,
            health_check_id=rr.get("HealthCheckId") or None,
            alias=bool(rr.get("AliasTarget")),
        )

    @property
    def value(self) -> str:
        """The values as one string (several A addresses comma-separated), as config spells them."""
        return ",".join(self.values)

    def describe(self) -> str:
        """How a problem names this record set: ``PRIMARY "db-1" -> a.example.net``."""
        role = self.failover or ("plain" if not self.set_identifier else "non-failover")
        ident = f' "{self.set_identifier}"' if self.set_identifier else " (no SetIdentifier)"
        target = "an alias" if self.alias else (self.value or "nothing")
        return f"{role}{ident} -> {target}"

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["values"] = list(self.values)
        return out


@dataclass
class DnsState:
    zone_id: str
    zone: str
    record: str
    type: str
    mode: str  # "simple" (one plain record set) | "failover" (failover record sets)
    records: list[RecordSet]
    active: str | None  # where clients go now: simple -> the record's value; failover -> the PRIMARY's value
    health_checks: dict[str, dict[str, Any]]  # id -> {"healthy", "statuses", "target", "exists"}
    problems: list[str]  # everything a preflight must refuse on, one readable line each
    expect: str = "primary"  # which side the record was required to point at when inspected
    primary: str | None = None  # the primary's value: from config, else (when it can be told) from the records
    secondary: str | None = None  # the secondary's value, likewise

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def target(self) -> str | None:
        """The value the drill moves clients to: the secondary's for a failover, the primary's for
        a failback (``expect="secondary"``); None when it is not known."""
        return self.secondary if self.expect == "primary" else self.primary

    def role(self, failover: str) -> RecordSet | None:
        """The one failover record set with that role (None when there is none, or several)."""
        found = [r for r in self.records if r.failover == failover]
        return found[0] if len(found) == 1 else None

    def values(self) -> tuple[str, ...]:
        """What the record sets point at now, one string per record set (failover: PRIMARY first)."""
        order = {"PRIMARY": 0, "SECONDARY": 1}
        ordered = sorted(self.records, key=lambda r: order.get(r.failover or "", 2))
        return tuple(r.value for r in ordered if not r.alias)

    def points_at(self, value: str | None) -> bool:
        """Whether clients are sent to ``value`` now (normalised: trailing dot, CNAME case, order)."""
        if value is None or self.active is None:
            return False
        return _key(_split(value, self.type), self.type) == _key(_split(self.active, self.type), self.type)

    def to_dict(self) -> dict[str, Any]:
        return {
            "zone_id": self.zone_id,
            "zone": self.zone,
            "record": self.record,
            "type": self.type,
            "mode": self.mode,
            "active": self.active,
            "expect": self.expect,
            "primary": self.primary,
            "secondary": self.secondary,
            "records": [r.to_dict() for r in self.records],
            "health_checks": {k: dict(v) for k, v in self.health_checks.items()},
            "problems": list(self.problems),
        }


class Route53:
    def __init__(
        self,
        client: Any,
        *,
        timeout: float = 120,
        poll: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client, self.timeout, self.poll = client, timeout, poll
        self.sleep, self.monotonic = sleep, monotonic

    # ------------------------------------------------------------ the zone
    def zone_id(self, zone: str) -> str:
        """The id (``Z…``, without ``/hostedzone/``) of the one hosted zone of exactly that name."""
        name = _name(zone)
        found: list[dict[str, Any]] = []
        args: dict[str, Any] = {"DNSName": f"{name}."}
        with aws_call(f"route53 list_hosted_zones_by_name {name}"):
            while True:
                page = self.client.list_hosted_zones_by_name(**args)
                zones = page.get("HostedZones") or []
                found.extend(z for z in zones if _name(str(z.get("Name", ""))) == name)
                # zones come sorted by name: another page can only hold more of ours when this one ended with ours
                if not page.get("IsTruncated") or not zones or _name(str(zones[-1].get("Name", ""))) != name:
                    break
                if not page.get("NextDNSName") or not page.get("NextHostedZoneId"):
                    break
                args = {"DNSName": page["NextDNSName"], "HostedZoneId": page["NextHostedZoneId"]}
        if not found:
            raise RefusedError(f"Route53 has no hosted zone {name}",
                               "check dns.zone and that these AWS credentials are the account holding it")  # fmt: skip
        if len(found) > 1:
            listed = ", ".join(
                f"{_bare_id(str(z['Id']))} ({'private' if (z.get('Config') or {}).get('PrivateZone') else 'public'})"
                for z in found
            )
            raise RefusedError(f"Route53 has {len(found)} hosted zones named {name}: {listed}",
                               "opsctl cannot tell which one clients resolve; keep one zone of that name")  # fmt: skip
        return _bare_id(str(found[0]["Id"]))

    # ------------------------------------------------------------ reading the record
    def record_sets(self, zone_id: str, record: str, type: str) -> list[RecordSet]:
        """The record sets of exactly that name and type (all of them: plain, failover, alias…)."""
        name, type = _name(record), type.upper()
        found: list[RecordSet] = []
        args: dict[str, Any] = {"HostedZoneId": zone_id, "StartRecordName": f"{name}.", "StartRecordType": type}
        seen: set[tuple[Any, ...]] = set()
        with aws_call(f"route53 list_resource_record_sets {name} {type} in {zone_id}"):
            while True:
                page = self.client.list_resource_record_sets(**args)
                past = False
                for rr in page.get("ResourceRecordSets") or []:
                    rs = RecordSet.from_aws(rr)
                    if (rs.name, rs.type) != (name, type):  # listed in order: the rest are other names/types
                        past = True
                        break
                    found.append(rs)
                if past or not page.get("IsTruncated"):
                    break
                token = (page.get("NextRecordName"), page.get("NextRecordType"), page.get("NextRecordIdentifier"))
                if token in seen:
                    raise UpstreamError(f"AWS route53 list_resource_record_sets {name} {type} in {zone_id}: "
                                        f"the listing did not advance ({token[0]} {token[1]} twice)")  # fmt: skip
                seen.add(token)
                args = {"HostedZoneId": zone_id, "StartRecordName": token[0], "StartRecordType": token[1]}
                if token[2]:
                    args["StartRecordIdentifier"] = token[2]
        return found

    def health_check(self, check_id: str) -> dict[str, Any]:
        """``{"healthy", "statuses", "target", "exists"}``: healthy only when every checker reports
        ``Success`` (no report at all is not healthy)."""
        from botocore.exceptions import ClientError

        with aws_call(f"route53 get_health_check {check_id}"):
            try:
                check = self.client.get_health_check(HealthCheckId=check_id)["HealthCheck"]
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "NoSuchHealthCheck":
                    return {"healthy": False, "statuses": [], "target": None, "exists": False}
                raise
        config = check.get("HealthCheckConfig") or {}
        kind = str(config.get("Type", ""))
        host = config.get("IPAddress") or config.get("FullyQualifiedDomainName")
        target = f"{host}:{config['Port']}" if host and config.get("Port") else (host or kind.lower() or None)
        if kind in ("CALCULATED", "CLOUDWATCH_METRIC", "RECOVERY_CONTROL"):  # GetHealthCheckStatus cannot report these
            return {"healthy": False, "statuses": [f"{kind}: its status cannot be read by opsctl"], "target": target,
                    "exists": True}  # fmt: skip
        with aws_call(f"route53 get_health_check_status {check_id}"):
            observations = self.client.get_health_check_status(HealthCheckId=check_id).get("HealthCheckObservations")
        statuses = []
        for o in observations or []:
            status = " ".join(str((o.get("StatusReport") or {}).get("Status", "")).split())
            statuses.append(f"{o.get('Region') or o.get('IPAddress') or '?'}: {status}")
        healthy = bool(observations) and all(
            str((o.get("StatusReport") or {}).get("Status", "")).startswith("Success") for o in observations or []
        )
        return {"healthy": healthy, "statuses": statuses, "target": target, "exists": True}

    def inspect(
        self,
        zone: str,
        record: str,
        type: str,
        *,
        primary: str | None = None,
        secondary: str | None = None,
        expect: str = "primary",
    ) -> DnsState:
        """Read the record (and its health checks) and list every problem a drill must refuse on.
        ``expect`` names the side the record must point at now: ``"primary"`` before a failover,
        ``"secondary"`` before a failback."""
        if expect not in SIDES:
            raise ValueError(f"expect must be one of {SIDES}, not {expect!r}")
        zone_name, name, type = _name(zone), _name(record), type.upper()
        zone_id = self.zone_id(zone_name)
        records = self.record_sets(zone_id, name, type)
        state = DnsState(zone_id, zone_name, name, type, "simple", records, None, {}, [], expect=expect)
        if name != zone_name and not name.endswith(f".{zone_name}"):
            state.problems.append(f"{name} is not a name in zone {zone_name}")
        if any(r.failover for r in records):
            state.mode = "failover"
            self._inspect_failover(state, primary, secondary)
        else:
            self._inspect_simple(state, primary, secondary)
        return state

    def _inspect_simple(self, state: DnsState, primary: str | None, secondary: str | None) -> None:
        what, problems = f"{state.record} {state.type}", state.problems
        state.primary, state.secondary = primary and _value(primary), secondary and _value(secondary)
        if not state.records:
            problems.append(f"there is no {what} record in zone {state.zone} ({state.zone_id})")
            return
        if len(state.records) > 1 or any(r.set_identifier for r in state.records):
            listed = "; ".join(r.describe() for r in state.records)
            problems.append(f"{what} has {len(state.records)} record set(s) with a routing policy other than failover "
                            f"({listed}): the drill switches one plain record or a failover pair")  # fmt: skip
            return
        rs = state.records[0]
        if rs.alias:
            problems.append(f"{what} is an alias record: the drill cannot switch an alias (make it a plain record "
                            "or failover record sets)")  # fmt: skip
            return
        state.active = rs.value or None
        here, other = (primary, secondary) if state.expect == "primary" else (secondary, primary)
        if other is None:
            verb = "over" if state.expect == "primary" else "back"
            problems.append(f"dns.{_other(state.expect)} is needed to fail a plain record {verb}")
        elif state.points_at(other):
            done = "failed over already?" if state.expect == "primary" else "failed back already?"
            problems.append(f"{what} already points at the {_other(state.expect)} {_value(other)}: {done}")
            return
        if here is not None and not state.points_at(here):
            problems.append(f"{what} points at {rs.value or 'nothing'}, which is neither dns.primary "
                            f"{_show(primary)} nor dns.secondary {_show(secondary)}")  # fmt: skip
        elif here is None:  # the record's value is taken as the side it must point at
            if state.expect == "primary":
                state.primary = rs.value
            else:
                state.secondary = rs.value

    def _inspect_failover(self, state: DnsState, primary: str | None, secondary: str | None) -> None:
        what, problems = f"{state.record} {state.type}", state.problems
        for rs in state.records:
            if rs.failover is None:
                problems.append(f"{what}: a record set without a Failover role is mixed in with the failover record "
                                f"sets ({rs.describe()})")  # fmt: skip
            elif rs.failover not in ROLES:
                problems.append(f"{what}: unknown Failover role {rs.failover} ({rs.describe()})")
            elif rs.set_identifier is None:
                problems.append(f"{what}: the {rs.failover} record set has no SetIdentifier ({rs.describe()})")
            if rs.alias:
                problems.append(f"{what}: {rs.describe()} is an alias record: the drill cannot switch an alias")
        counts = {role: sum(r.failover == role for r in state.records) for role in ROLES}
        if counts != {"PRIMARY": 1, "SECONDARY": 1}:
            found = ", ".join(f"{n} {role}" for role, n in counts.items())
            problems.append(f"{what}: failover needs exactly one PRIMARY and one SECONDARY record set, found {found} "
                            f"({'; '.join(r.describe() for r in state.records if r.failover)})")  # fmt: skip
        first, second = state.role("PRIMARY"), state.role("SECONDARY")
        state.active = (first.value or None) if first is not None and not first.alias else None
        for check_id in dict.fromkeys(r.health_check_id for r in state.records if r.health_check_id):
            state.health_checks[check_id] = self.health_check(check_id)
            if not state.health_checks[check_id]["exists"]:
                holders = ", ".join(r.describe() for r in state.records if r.health_check_id == check_id)
                problems.append(f"{what}: health check {check_id} does not exist (used by {holders})")
        if first is None or second is None or first.alias or second.alias:
            return
        if _key(first.values, state.type) == _key(second.values, state.type):
            problems.append(f"{what}: both failover record sets point at {first.value}: there is nothing to switch to")
            return
        # the record set that holds the primary's value now, and the one that takes the traffic
        home, away = (first, second) if state.expect == "primary" else (second, first)
        state.primary, state.secondary = primary and _value(primary), secondary and _value(secondary)
        if not self._config_agrees(state, home, away, primary, secondary):
            return
        state.primary, state.secondary = home.value, away.value
        if home.health_check_id is None:
            if state.expect == "primary":
                problems.append(f"{what}: the PRIMARY record set has no HealthCheckId ({first.describe()}): Route53 "
                                "would never fail it over by itself")  # fmt: skip
            else:
                problems.append(f"{what}: the SECONDARY record set, which holds the primary's value, has no "
                                f"HealthCheckId ({second.describe()}): after the failback the PRIMARY would "
                                "have none")  # fmt: skip
        incoming = second  # the swap always sends clients to what the SECONDARY holds now
        check = state.health_checks.get(incoming.health_check_id or "")
        if check is not None and check["exists"] and not check["healthy"]:
            shown = "; ".join(check["statuses"]) or "no checker has reported yet"
            problems.append(f"{what}: {incoming.value}, which must take the traffic, is not healthy (health check "
                            f"{incoming.health_check_id}: {shown})")  # fmt: skip

    def _config_agrees(
        self, state: DnsState, home: RecordSet, away: RecordSet, primary: str | None, secondary: str | None
    ) -> bool:
        """Configured values must match the records: the primary in ``home``, the secondary in ``away``."""
        wanted = {"primary": primary, "secondary": secondary}
        sides = {"primary": home, "secondary": away}
        given = {side: value for side, value in wanted.items() if value is not None}
        if not given:
            return True

        def matches(side: str, rs: RecordSet) -> bool:
            return _key(_split(wanted[side] or "", state.type), state.type) == _key(rs.values, state.type)

        if all(matches(side, sides[side]) for side in given):
            return True
        what = f"{state.record} {state.type}"
        if all(matches(side, sides[_other(side)]) for side in given):
            done = "failed over already?" if state.expect == "primary" else "failed back already?"
            first = state.role("PRIMARY")
            shown = first.value if first is not None else "?"
            state.problems.append(f"{what} already points at the {_other(state.expect)} {shown}: {done}")
        else:
            first, second = state.role("PRIMARY"), state.role("SECONDARY")
            assert first is not None and second is not None
            state.problems.append(f"{what}: configured dns.primary {_show(primary)} / dns.secondary {_show(secondary)} "
                                  f"disagree with the failover record sets (PRIMARY -> {first.value}, SECONDARY -> "
                                  f"{second.value})")  # fmt: skip
        return False

    # ------------------------------------------------------------ switching
    def point(self, state: DnsState, value: str, *, ttl: int, comment: str = "") -> str | None:
        """Make clients go to ``value`` and wait until Route53 has the change ``INSYNC``; the change
        id, or None when the record already points there (then nothing is called)."""
        if state.mode == "failover":
            changes = self._swap(state, value)
        else:
            changes = self._upsert(state, value, ttl)
        if not changes:
            return None
        batch: dict[str, Any] = {"Changes": changes}
        if comment:
            batch["Comment"] = comment[:256]
        with aws_call(f"route53 change_resource_record_sets {state.record} {state.type} in {state.zone_id}"):
            info = self.client.change_resource_record_sets(HostedZoneId=state.zone_id, ChangeBatch=batch)["ChangeInfo"]
        change_id = _bare_id(str(info["Id"]))
        self.wait(change_id, str(info.get("Status", "PENDING")))
        return change_id

    def _upsert(self, state: DnsState, value: str, ttl: int) -> list[dict[str, Any]]:
        what = f"{state.record} {state.type}"
        if not state.records:
            raise RefusedError(f"there is no {what} record in zone {state.zone} to point",
                               "create it first: the drill only switches an existing record")  # fmt: skip
        if len(state.records) != 1 or state.records[0].set_identifier or state.records[0].alias:
            raise RefusedError(f"{what} is not one plain record ({'; '.join(r.describe() for r in state.records)})",
                               "the drill switches one plain record or a failover pair")  # fmt: skip
        values = _split(value, state.type)
        if not values:
            raise RefusedError(f"no value to point {what} at")
        if _key(values, state.type) == _key(state.records[0].values, state.type):
            return []
        record_set = {"Name": f"{state.record}.", "Type": state.type, "TTL": ttl,
                      "ResourceRecords": [{"Value": v} for v in values]}  # fmt: skip
        return [{"Action": "UPSERT", "ResourceRecordSet": record_set}]

    def _swap(self, state: DnsState, value: str) -> list[dict[str, Any]]:
        what = f"{state.record} {state.type}"
        first, second = state.role("PRIMARY"), state.role("SECONDARY")
        if (first is None or second is None or first.alias or second.alias or not first.set_identifier
                or not second.set_identifier):  # fmt: skip
            listed = "; ".join(r.describe() for r in state.records)
            raise RefusedError(f"{what}: cannot switch these failover record sets ({listed})",
                               "each of one PRIMARY and one SECONDARY needs a SetIdentifier and no alias")  # fmt: skip
        wanted = _key(_split(value, state.type), state.type)
        if wanted == _key(first.values, state.type):
            return []
        if wanted != _key(second.values, state.type):
            raise RefusedError(f"{what}: {_value(value)} is neither failover record set's value (PRIMARY -> "
                               f"{first.value}, SECONDARY -> {second.value})",
                               "the drill only swaps the two values the record sets hold")  # fmt: skip
        # both keep their identifier, role and TTL; each value takes its health check along
        return [
            _failover_upsert(state, first, second.values, second.health_check_id),
            _failover_upsert(state, second, first.values, first.health_check_id),
        ]

    def wait(self, change_id: str, status: str = "PENDING") -> None:
        """Poll ``get_change`` until ``INSYNC``; still not in sync after the timeout is an UpstreamError
        (the change was made and may still finish)."""
        deadline = self.monotonic() + self.timeout
        while status != "INSYNC":
            if self.monotonic() >= deadline:
                raise UpstreamError(f"Route53 change {change_id} still {status} after {self.timeout:.0f}s",
                                    f"it was made and may finish: aws route53 get-change --id {change_id}")  # fmt: skip
            self.sleep(self.poll)
            with aws_call(f"route53 get_change {change_id}"):
                status = str(self.client.get_change(Id=change_id)["ChangeInfo"].get("Status", ""))


def _failover_upsert(state: DnsState, rs: RecordSet, values: tuple[str, ...], check: str | None) -> dict[str, Any]:
    record_set: dict[str, Any] = {
        "Name": f"{state.record}.",
        "Type": state.type,
        "SetIdentifier": rs.set_identifier,
        "Failover": rs.failover,
        "TTL": rs.ttl if rs.ttl is not None else 60,
        "ResourceRecords": [{"Value": v} for v in values],
    }
    if check:
        record_set["HealthCheckId"] = check
    return {"Action": "UPSERT", "ResourceRecordSet": record_set}


def _other(side: str) -> str:
    return "secondary" if side == "primary" else "primary"


def _show(value: str | None) -> str:
    return _value(value) if value else "(not set)"
