"""Finding, reading and validating opsctl.yaml, with every problem located.

Problems are reported as ``file:line: key.path: message`` — all of them, not
just the first — and raised together as one :class:`~opsctl.errors.ConfigError`.
"""

from __future__ import annotations

import functools
import os
import re
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


MAX_CONFIG_BYTES = 1 << 20  # 1 MiB: a config of a thousand services is a tenth of that
MAX_PROBLEMS = 50
_SECRET_KEY = re.compile(r"pass|secret|token|key|dsn|credential|url|address", re.IGNORECASE)
CACHE_RULES = 2  # bump when validation changes, so that a snapshot cached under older rules is not trusted
EMPTY = "the config is empty (only comments or blank lines): write at least 'version: 1' and your services"


def read_source(source: Source) -> str:
    """The config's text: a regular UTF-8 file of at most :data:`MAX_CONFIG_BYTES`.

    Anything else — a FIFO (never opened, so never waited on), a device like
    ``/dev/zero``, a directory, a symlink loop, an unreadable or huge file — is
    one located problem, found without reading more than the limit."""
    if source.path is None:
        return embedded_text()
    from opsctl.fsutil import FileTooLarge, RefusedFile, read_bounded

    where = str(source.path)
    try:
        raw = read_bounded(source.path, MAX_CONFIG_BYTES)
    except FileNotFoundError:
        raise ConfigError(
            [ConfigProblem(where, None, "", f"config file not found (from {source.reason}); check the path")]
        ) from None
    except FileTooLarge:
        message = "cannot read config: it is larger than 1 MiB, the limit for a config file; is it the right file?"
        raise ConfigError([ConfigProblem(where, None, "", message)]) from None
    except RefusedFile as exc:
        message = f"cannot read config: it {exc.reason}; give the path of a YAML file"
        raise ConfigError([ConfigProblem(where, None, "", message)]) from None
    except OSError as exc:
        raise ConfigError([ConfigProblem(where, None, "", f"cannot read config: {_os_reason(exc)}")]) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        message = f"not UTF-8 text (byte 0x{raw[exc.start]:02x}): save the config as UTF-8"
        raise ConfigError([ConfigProblem(where, line, "", message)]) from None


def _os_reason(exc: OSError) -> str:
    import errno

    reasons = {
        errno.ELOOP: "too many levels of symbolic links (a symlink loop?); check where the path points",
        errno.EACCES: "permission denied; make the file readable for this user",
        errno.EPERM: "permission denied; make the file readable for this user",
        errno.ENOTDIR: "a part of the path is not a directory; check the path",
        errno.ENAMETOOLONG: "the path is too long; check the path",
    }
    return reasons.get(exc.errno or 0) or exc.strerror or type(exc).__name__


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
    key = f"{__version__}\0{CACHE_RULES}\0{source.label}\0{text}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
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
    from opsctl.fsutil import ensure_private_dir, write_private_file

    try:
        ensure_private_dir(cache_dir)  # creates the state dir 0700 too when the cache comes first
        write_private_file(path, json.dumps(data))
        for old in sorted(cache_dir.glob("*.json"), key=lambda p: p.stat().st_mtime)[:-8]:
            old.unlink(missing_ok=True)
    except OSError:
        pass  # a read-only state dir only costs speed
    return data


class _DuplicateKey(Exception):
    pass


@functools.cache
def _fast_loader() -> type | None:
    """libyaml's loader, refusing duplicate keys (the slow path locates them); None without libyaml."""
    import yaml

    base: type | None = getattr(yaml, "CSafeLoader", None)
    if base is None:
        return None

    class Loader(base):  # type: ignore[misc,valid-type]
        def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
            keys = [k.value if isinstance(k, yaml.ScalarNode) else id(k) for k, _ in node.value]
            if len(keys) != len(set(keys)):
                raise _DuplicateKey()
            return dict(super().construct_mapping(node, deep=deep))

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, Loader.construct_mapping)
    return Loader


def parse(text: str, label: str) -> Config:
    """Validate ``text``; raise :class:`ConfigError` listing every problem found.

    The happy path parses once with libyaml (the node graph is bounded before
    anything is built from it); only a file with problems is parsed again node
    by node to find the line of each problem."""
    import yaml
    from pydantic import ValidationError

    from opsctl.settings import Config, cross_check
    from opsctl.yamlsafe import check_bounds

    loader_class = _fast_loader()
    if loader_class is None:
        return _diagnose(text, label)
    loader = loader_class(text)
    data: Any = None
    try:
        root = loader.get_single_node()
        if root is not None:
            check_bounds(root, label)
            data = loader.construct_document(root)
    except (yaml.YAMLError, _DuplicateKey):
        data = None
    finally:
        loader.dispose()
    if isinstance(data, dict) and data:
        try:
            config = Config.model_validate(data)
        except ValidationError:
            pass
        else:
            if not cross_check(data):
                return config
    return _diagnose(text, label)


def _diagnose(text: str, label: str) -> Config:
    from pydantic import ValidationError

    from opsctl.settings import Config, cross_check
    from opsctl.yamlsafe import compose, construct

    root = compose(text, label)
    if root is None:
        raise ConfigError([ConfigProblem(label, None, "", EMPTY)])
    index = _Index(label)
    index.walk(root, (), ())
    data = construct(root, text, label)
    if data is None or data == {}:
        raise ConfigError([ConfigProblem(label, root.start_mark.line + 1, "", EMPTY)])
    if not isinstance(data, dict):
        raise ConfigError([ConfigProblem(label, 1, "", "the config must be a mapping of keys (version, services, …)")])
    locate = _Locator(label, data, index)
    problems = list(index.problems)
    config: Config | None = None
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            problems.append(locate(error["loc"], locate.message(error)))
    for loc, message in cross_check(data):
        problems.append(locate(loc, message))
    if problems or config is None:
        problems.sort(key=lambda p: (p.line or 0, p.path))
        if len(problems) > MAX_PROBLEMS:  # a file that is wrong throughout: the first ones say enough
            more = len(problems) - MAX_PROBLEMS
            problems[MAX_PROBLEMS:] = [ConfigProblem(label, None, "", f"… and {more} more problems")]
        raise ConfigError(problems)
    return config


class _Index:
    """Lines of every key path, the scalar nodes (for quoting hints) and duplicate keys."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.lines: dict[tuple[str, ...], int] = {}
        self.scalars: dict[tuple[str, ...], yaml.ScalarNode] = {}
        self.problems: list[ConfigProblem] = []

    def walk(self, node: yaml.Node, path: tuple[str, ...], names: tuple[str, ...]) -> None:
        import yaml

        from opsctl.yamlsafe import item_label, readable

        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, value_node in node.value:
                key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
                here, named = (*path, key), (*names, key)
                if key in seen and key != "<<":
                    line = key_node.start_mark.line + 1
                    self.problems.append(ConfigProblem(self.label, line, readable(named), "duplicate key"))
                seen.add(key)
                self.lines.setdefault(here, key_node.start_mark.line + 1)
                self.walk(value_node, here, named)
        elif isinstance(node, yaml.SequenceNode):
            parent = names[-1] if names else ""
            for index, item in enumerate(node.value):
                here = (*path, str(index))
                self.lines.setdefault(here, item.start_mark.line + 1)
                self.walk(item, here, (*names, item_label(parent, index, item)))
        elif isinstance(node, yaml.ScalarNode):
            self.scalars.setdefault(path, node)


class _Locator:
    """Turns a pydantic/cross-check location into a line and a readable key path."""

    def __init__(self, label: str, data: dict[str, Any], index: _Index) -> None:
        self.label, self.data, self.index = label, data, index

    def __call__(self, loc: tuple[Any, ...], message: str) -> ConfigProblem:
        raw = tuple(str(part) for part in loc if part != "[key]")
        line = None
        for end in range(len(raw), 0, -1):
            if raw[:end] in self.index.lines:
                line = self.index.lines[raw[:end]]
                break
        return ConfigProblem(self.label, line, self._readable(loc), message)

    def message(self, error: Any) -> str:
        kind = error["type"]
        if kind == "extra_forbidden":
            return "unknown key; check the spelling (see config/schema.json)"
        if kind == "missing":
            return "required key is missing"
        if kind == "string_type":
            hint = self._quote_hint(error["loc"], error.get("input"))
            if hint:
                return hint
        message = str(error["msg"])
        for prefix in ("Value error, ", "Assertion failed, "):
            message = message.removeprefix(prefix)
        return message

    def _quote_hint(self, loc: tuple[Any, ...], value: Any) -> str | None:
        """YAML 1.1 reads some unquoted text as something else: ``18:00`` is the number 1080
        (base 60), ``no`` is false.  Say so, with the text as written."""
        node = self.index.scalars.get(tuple(str(part) for part in loc))
        if node is None or node.style or node.tag == "tag:yaml.org,2002:str":  # quoted: None or "" is plain
            return None
        if isinstance(value, bool):
            kind, shown = "the boolean", str(value).lower()
        elif isinstance(value, int | float):
            kind, shown = "the number", str(value)
        elif value is None:
            kind, shown = "null", "(no value)"
        else:
            kind, shown = f"a {type(value).__name__}", ""
        if isinstance(loc[-1], str) and _SECRET_KEY.search(loc[-1]):  # the value may be a secret: not shown
            return f"write this value in quotes: YAML reads it unquoted as {kind}"
        text = str(node.value)
        what = f"{kind} {shown}".strip()
        return f'write "{text}" in quotes: YAML reads {text} unquoted as {what}'

    def _readable(self, loc: tuple[Any, ...]) -> str:
        parts: list[str] = []
        node: Any = self.data
        for part in loc:
            if part == "[key]":
                continue
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
