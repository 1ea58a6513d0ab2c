"""YAML for config files: composed within bounds, and syntax errors in words.

A few hundred bytes of YAML can expand, through aliases, into billions of values
(a "billion laughs"), and nesting thousands of levels deep crashes recursive
code.  So the composed node graph — aliases are shared nodes in it, nothing is
expanded yet — is measured before any Python object or pydantic sees it: its
nesting depth and the number of values it would have with every alias expanded,
each node counted once thanks to memoisation.  Ordinary anchors and aliases that
share a block stay well within the bounds.

Parser errors come with the line and what to check, not the parser's raw text.
Only :func:`check_bounds` is on the fast path; the rest runs on problems only.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from opsctl.errors import ConfigError, ConfigProblem

if TYPE_CHECKING:
    import yaml

MAX_DEPTH = 64  # opsctl.yaml needs about 8 levels
MAX_VALUES = 100_000  # with aliases expanded; 1000 services of 40 values each fit twice


def check_bounds(root: yaml.Node, label: str) -> None:
    """Refuse a graph nested deeper than :data:`MAX_DEPTH` levels, or expanding to more than
    :data:`MAX_VALUES` values, or with an alias inside the block it names.  Iterative and
    linear in the number of distinct nodes, whatever the aliases would expand to."""
    import yaml

    collection = yaml.CollectionNode
    if not isinstance(root, collection):
        return
    done: dict[int, tuple[int, int]] = {}  # id(node) -> (values with aliases expanded, levels)
    # one frame per open collection: [node, its collections, next one, values so far, levels below]
    frames: list[list[Any]] = [_frame(root, collection)]
    active = {id(root)}
    shared = False
    while frames:
        top = frames[-1]
        if top[2] < len(top[1]):
            child = top[1][top[2]]
            top[2] += 1
            if id(child) in active:
                _refuse(label, child, frames, "an alias refers to the block that contains it (a loop)")
            known = done.get(id(child))
            if known is not None:
                shared = True
                if len(frames) + known[1] > MAX_DEPTH:
                    _refuse(label, child, frames, _too_deep())
                top[3] += known[0]
                top[4] = max(top[4], known[1])
                continue
            if len(frames) >= MAX_DEPTH:
                _refuse(label, child, frames, _too_deep())
            frames.append(_frame(child, collection))
            active.add(id(child))
            continue
        frames.pop()
        node = top[0]
        active.discard(id(node))
        size, levels = top[3] + 1, top[4] + 1
        if size > MAX_VALUES:
            why = (
                f"aliases expand this to more than {MAX_VALUES} values; use fewer or smaller aliases"
                if shared
                else f"more than {MAX_VALUES} values: too large for a config file"
            )
            _refuse(label, node, frames, why)
        done[id(node)] = (size, levels)
        if frames:
            frames[-1][3] += size
            frames[-1][4] = max(frames[-1][4], levels)


def _frame(node: yaml.Node, collection: type) -> list[Any]:
    """``[node, collections among its keys and values, 0, number of scalars among them, 0]``."""
    import yaml

    children = [part for pair in node.value for part in pair] if isinstance(node, yaml.MappingNode) else node.value
    nested = [child for child in children if isinstance(child, collection)]
    return [node, nested, 0, len(children) - len(nested), 0]


def _refuse(label: str, node: yaml.Node, frames: list[list[Any]], message: str) -> None:
    """Raise the problem at ``node``, the child last taken from the innermost open frame."""
    import yaml

    parts: list[str] = []
    for frame in frames:
        parent, child = frame[0], frame[1][frame[2] - 1]
        if isinstance(parent, yaml.MappingNode):
            key = next(k for k, v in parent.value if child is k or child is v)
            parts.append(str(key.value) if isinstance(key, yaml.ScalarNode) else "?")
        else:
            taken = next(i for i, item in enumerate(parent.value) if item is child)
            parts.append(item_label(parts[-1] if parts else "", taken, child))
    where = readable(parts) if len(parts) <= 8 else readable(parts[:6]) + "…"  # one readable line
    raise ConfigError([ConfigProblem(label, node.start_mark.line + 1, where, message)])


def item_label(parent: str, index: int, item: yaml.Node) -> str:
    """``[2]``, or the service's name for an item of ``services`` (as other problems name it)."""
    import yaml

    if parent == "services" and isinstance(item, yaml.MappingNode):
        for key, value in item.value:
            if isinstance(key, yaml.ScalarNode) and key.value == "name" and isinstance(value, yaml.ScalarNode):
                return str(value.value) if value.value else f"[{index}]"
    return f"[{index}]"


def readable(parts: list[str] | tuple[str, ...]) -> str:
    """Key path parts joined as problems show them: ``services.auth.tier``, ``confirm[1].tiers``."""
    out: list[str] = []
    for part in parts:
        if part.startswith("[") and out:
            out[-1] += part
        elif part:
            out.append(part)
    return ".".join(out)


def _too_deep() -> str:
    return f"nested more than {MAX_DEPTH} levels deep; a config needs far fewer"


# ------------------------------------------------------------ syntax errors


def compose(text: str, label: str) -> yaml.Node | None:
    """The checked node graph of ``text``; a :class:`ConfigError` for a syntax error or a bound."""
    import yaml

    loader_class: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    if loader_class is yaml.SafeLoader:  # pure-Python composer recurses: bound the depth first
        _scan(text, label)
    loader = loader_class(text)
    try:
        root: yaml.Node | None = loader.get_single_node()
    except yaml.YAMLError as exc:
        raise ConfigError([syntax_problem(text, label, exc)]) from None
    finally:
        loader.dispose()
    if root is not None:
        check_bounds(root, label)
    return root


def construct(root: yaml.Node, text: str, label: str) -> Any:
    """Python data from a checked graph (the last of duplicate keys wins; those are reported apart)."""
    import yaml

    loader = yaml.SafeLoader("")
    try:
        return loader.construct_document(root)
    except yaml.YAMLError as exc:
        raise ConfigError([syntax_problem(text, label, exc)]) from None
    finally:
        loader.dispose()


def syntax_problem(text: str, label: str, error: yaml.YAMLError) -> ConfigProblem:
    """One readable line for a YAML error: where, the parser's gist, and what to check."""
    import yaml

    if isinstance(error, yaml.reader.ReaderError):
        bad = yaml.reader.Reader.NON_PRINTABLE.search(text)
        line = text.count("\n", 0, bad.start()) + 1 if bad else None
        what = f"character #x{ord(bad.group()):04x}" if bad else "character"
        return ConfigProblem(
            label, line, "", f"YAML syntax error: unacceptable {what}: remove it (is this a text file?)"
        )
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    context = getattr(error, "context", None) or ""
    problem_mark = getattr(error, "problem_mark", None)
    context_mark = getattr(error, "context_mark", None)
    if context and not context.startswith("while "):  # the context is the first half of the message
        problem = context.split(";")[0] if ";" in context else f"{context}, {problem}"
    if "maximum nesting depth" in problem:
        line = problem_mark.line + 1 if problem_mark is not None else None
        return ConfigProblem(label, line, "", _too_deep())
    hint, at_start = next(((h, s) for key, h, s in _HINTS if key in problem), (_FALLBACK, False))
    mark = (context_mark if at_start else problem_mark) or problem_mark or context_mark
    line = mark.line + 1 if mark is not None else None
    at = text[problem_mark.index : problem_mark.index + 80] if problem_mark is not None else ""
    if problem == "found character that cannot start any token" and at:  # libyaml does not say which
        problem = f"found character {at[0]!r} that cannot start any token"
    if problem == "found undefined alias" and re.match(r"\*[^\s,\[\]{}]+", at):
        problem = f"found undefined alias {at[1:].split()[0].rstrip(',]}')!r}"
    if "'\\t'" in problem:
        hint = _TABS
    gist = re.sub(r"\s+", " ", problem).strip()
    return ConfigProblem(label, line, "", f"YAML syntax error: {gist}: {hint}")


def _scan(text: str, label: str) -> None:
    """Without libyaml: refuse deep nesting before PyYAML's recursive composer meets it."""
    import yaml

    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                line = event.start_mark.line + 1 if event.start_mark else None
                raise ConfigError([ConfigProblem(label, line, "", _too_deep())])
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


_INDENT = "check the indentation of this line: it must line up with the other keys (or '- ' items) of its block"
_TABS = "YAML does not allow tabs for indentation: use spaces"
# (part of what libyaml or PyYAML said, what to check, whether to show the line where the construct began)
_HINTS: tuple[tuple[str, str, bool], ...] = (
    (
        "mapping values are not allowed",
        "probably the indentation of this line (line it up with the keys above), a missing space after a ':' "
        "on the line before, or a ':' inside a value (put that value in quotes)",
        False,
    ),
    ("could not find expected ':'", "a key without ':' (and a space after it), or a quote left open", True),
    ("expected <block end>", _INDENT, False),
    ("did not find expected key", _INDENT, False),
    ("did not find expected '-'", _INDENT, False),
    ("block sequence entries are not allowed", "a '- ' item must start its own line, indented under its key", False),
    ("expected ',' or ']'", "the [ opened on this line is not closed, or an item in it needs quotes", True),
    ("expected ',' or '}'", "the { opened on this line is not closed, or a value in it needs quotes", True),
    ("tab character", _TABS, False),
    ("that cannot start any token", "a value starting with @, ` or % must be put in quotes", False),
    ("found unexpected end of stream", "the quote opened on this line is never closed", True),
    ("unknown escape character", "in double quotes a \\ starts an escape: use single quotes", False),
    ("found undefined alias", "an alias (*name) needs an anchor (&name) defined above it", False),
    ("found duplicate anchor", "each anchor (&name) can be defined once", False),
    ("but found another document", "a config is one YAML document: remove the second '---'", False),
    ("found unhashable key", "a key must be a plain value, not a list or a mapping", False),
)
_FALLBACK = "check this line and the one above: indentation, a space after each ':', quotes"
