"""Finding, reading and validating opsctl.yaml, with every problem located.

Problems are reported as ``file:line: key.path: message`` — all of them, not
just the first — and raised together as one :class:`~opsctl.errors.ConfigError`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsctl.errors import ConfigError, ConfigProblem

if TYPE_CHECKING:
    import yaml

    from opsctl.settings import Config

CONFIG_ENV = "OPSCTL_CONFIG"
EMBEDDED = "<embedded example>"


@dataclass(frozen=True)
class Source:
    """Where the config came from: a path, or the example embedded in the package."""

    path: Path | None
    reason: str  # "--config", "$OPSCTL_CONFIG", "./opsctl.yaml", "user config dir", "embedded"

    @property
    def label(self) -> str:
        return str(self.path) if self.path else EMBEDDED


def user_config_path() -> Path:
    from platformdirs import user_config_path as _ucp

    return _ucp("opsctl") / "opsctl.yaml"


def discover(explicit: str | None) -> Source:
    """``--config``, ``$OPSCTL_CONFIG``, ``./opsctl.yaml``, the user config dir, else the embedded example."""
    if explicit:
        return Source(Path(explicit), "--config")
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Source(Path(env), f"${CONFIG_ENV}")
    local = Path("opsctl.yaml")
    if local.is_file():
        return Source(local, "./opsctl.yaml")
    user = user_config_path()
    if user.is_file():
        return Source(user, "user config dir")
    return Source(None, "embedded")


def embedded_text() -> str:
    return resources.files("opsctl.defaults").joinpath("opsctl.example.yaml").read_text(encoding="utf-8")


def read_source(source: Source) -> str:
    if source.path is None:
        return embedded_text()
    try:
        return source.path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            [ConfigProblem(str(source.path), None, "", f"config file not found (from {source.reason}); check the path")]
        ) from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ConfigError([ConfigProblem(str(source.path), None, "", f"cannot read config: {reason}")]) from None


def load(source: Source) -> Config:
    return parse(read_source(source), source.label)


def snapshot(source: Source, cache_dir: Path) -> dict[str, Any]:
    """The validated config as plain data (defaults and built-in tiers merged in).

    Cached by the hash of the file's text, so read-only views (``services``,
    ``tiers``) skip YAML parsing and pydantic entirely on a config seen before;
    a changed file is a new hash and is validated again."""
    import hashlib
    import json

    from opsctl import __version__

    text = read_source(source)
    digest = hashlib.sha256(f"{__version__}\0{source.label}\0{text}".encode()).hexdigest()[:32]
    path = cache_dir / f"{digest}.json"
    try:
        cached: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return cached
    except (OSError, ValueError):
        pass
    config = parse(text, source.label)
    data = config.model_dump(mode="json", by_alias=True)
    data["tiers"] = {str(n): t.model_dump(mode="json") for n, t in config.effective_tiers().items()}
    data["overridden_tiers"] = sorted(config.tiers)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        tmp.replace(path)
        for old in sorted(cache_dir.glob("*.json"), key=lambda p: p.stat().st_mtime)[:-8]:
            old.unlink(missing_ok=True)
    except OSError:
        pass  # a read-only state dir only costs speed
    return data


class _DuplicateKey(Exception):
    pass


def _fast_loader() -> type:
    import yaml

    base: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class Loader(base):  # type: ignore[misc]
        def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
            keys = [k.value for k, _ in node.value]
            if len(keys) != len(set(keys)):
                raise _DuplicateKey()
            return dict(super().construct_mapping(node, deep=deep))

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, Loader.construct_mapping)
    return Loader


def parse(text: str, label: str) -> Config:
    """Validate ``text``; raise :class:`ConfigError` listing every problem found.

    The happy path parses once with libyaml; only a file with problems is parsed
    again node by node to find the line of each problem."""
    import yaml
    from pydantic import ValidationError

    from opsctl.settings import Config, cross_check

    try:
        data = yaml.load(text, Loader=_fast_loader())
    except (yaml.YAMLError, _DuplicateKey):
        data = None
    if isinstance(data, dict):
        try:
            config = Config.model_validate(data)
        except ValidationError:
            pass
        else:
            if not cross_check(data):
                return config
    return _diagnose(text, label)


def _diagnose(text: str, label: str) -> Config:
    import yaml
    from pydantic import ValidationError

    from opsctl.settings import Config, cross_check

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([ConfigProblem(label, line, "", f"YAML syntax error: {problem}")]) from None
    lines: dict[tuple[str, ...], int] = {}
    problems: list[ConfigProblem] = []
    if root is not None:
        _index(root, (), lines, problems, label)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([ConfigProblem(label, 1, "", "the config must be a mapping of keys (version, services, …)")])
    locate = _Locator(label, data, lines)
    config: Config | None = None
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            problems.append(locate(error["loc"], _message(error)))
    for loc, message in cross_check(data):
        problems.append(locate(loc, message))
    if problems or config is None:
        raise ConfigError(sorted(problems, key=lambda p: (p.line or 0, p.path)))
    return config


def _message(error: Any) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key; check the spelling (see config/schema.json)"
    if kind == "missing":
        return "required key is missing"
    message = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return message


def _index(
    node: yaml.Node, path: tuple[str, ...], lines: dict[tuple[str, ...], int], problems: list[ConfigProblem], label: str
) -> None:
    import yaml

    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            here = (*path, key)
            if key in seen:
                problems.append(ConfigProblem(label, key_node.start_mark.line + 1, ".".join(here), "duplicate key"))
            seen.add(key)
            lines.setdefault(here, key_node.start_mark.line + 1)
            _index(value_node, here, lines, problems, label)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            here = (*path, str(index))
            lines.setdefault(here, item.start_mark.line + 1)
            _index(item, here, lines, problems, label)


class _Locator:
    """Turns a pydantic/cross-check location into a line and a readable key path."""

    def __init__(self, label: str, data: dict[str, Any], lines: dict[tuple[str, ...], int]) -> None:
        self.label, self.data, self.lines = label, data, lines

    def __call__(self, loc: tuple[Any, ...], message: str) -> ConfigProblem:
        raw = tuple(str(part) for part in loc)
        line = None
        for end in range(len(raw), 0, -1):
            if raw[:end] in self.lines:
                line = self.lines[raw[:end]]
                break
        return ConfigProblem(self.label, line, self._readable(loc), message)

    def _readable(self, loc: tuple[Any, ...]) -> str:
        parts: list[str] = []
        node: Any = self.data
        for part in loc:
            label = str(part)
            if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
                item = node[part]
                name = item.get("name") if isinstance(item, dict) else None
                label = str(name) if isinstance(name, str) and parts and parts[-1] == "services" else f"[{part}]"
                node = item
            elif isinstance(node, dict):
                node = node.get(part, node.get(str(part)))
            else:
                node = None
            if label.startswith("[") and parts:
                parts[-1] += label
            else:
                parts.append(label)
        return ".".join(parts)
