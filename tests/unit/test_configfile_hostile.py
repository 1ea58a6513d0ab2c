"""Hostile config files: one clear line, exit 2, bounded time and memory, never a traceback.

The CLI runs in a subprocess with an address-space limit (before these bounds, a
340-byte alias bomb took 1.4 GB and ``/dev/zero`` 9.8 GB) and a timeout that is
only a hang guard (a FIFO used to block forever).
"""

from __future__ import annotations

import itertools
import os
import resource
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

from opsctl.configfile import MAX_CONFIG_BYTES, Source, load, parse
from opsctl.errors import ConfigError
from opsctl.yamlsafe import MAX_DEPTH, MAX_VALUES

OPSCTL = Path(sys.executable).with_name("opsctl")
MEMORY_LIMIT = 1 << 30  # address space; opsctl validating a normal config needs a fraction of it


def validate(path: Path | str) -> subprocess.CompletedProcess[str]:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))

    return subprocess.run(
        [str(OPSCTL), "config", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=120,  # hang guard only
        preexec_fn=limit,
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    return lines[0]


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse(text, "c.yaml")
    return info.value.lines()


def alias_bomb(levels: int) -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    names = "abcdefghijklmnop"
    for previous, name in itertools.pairwise(names[:levels]):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 9) + "]")
    return "\n".join(lines) + f"\nservices: *{names[levels - 1]}\n"


def test_the_validating_cli_fits_the_memory_limit(tmp_path, example_config):
    result = subprocess.run(
        [str(OPSCTL), "config", "validate", str(example_config)],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT)),
    )
    assert result.returncode == 0, result.stderr  # so that the refusals below are not just the limit


@pytest.mark.parametrize("levels", [7, 9])
def test_alias_bomb_is_refused_before_it_expands(tmp_path, levels):
    path = tmp_path / "bomb.yaml"
    path.write_text(alias_bomb(levels))
    assert path.stat().st_size < 500
    line = one_line(validate(path))
    assert f"aliases expand this to more than {MAX_VALUES} values" in line
    assert line.startswith(f"{path}:")


def test_ordinary_anchors_and_aliases_still_share_blocks():
    text = (
        "services:\n"
        "  - name: a\n    tier: 1\n    owner: t\n    kubernetes: &k8s {context: prod, namespace: n, deployment: d}\n"
        "  - name: b\n    tier: 1\n    owner: t\n    kubernetes: *k8s\n"
        "policy:\n  business_hours: &hours {timezone: Europe/Berlin}\n"
        "teams:\n  t: {business_hours: *hours}\n"
    )
    config = parse(text, "c.yaml")
    assert config.services[1].kubernetes is not None and config.services[1].kubernetes.context == "prod"
    assert config.business_hours("t").timezone == "Europe/Berlin"


def test_an_alias_inside_its_own_block_is_refused():
    assert problems("policy:\n  confirm: &loop [*loop]\n") == [
        "c.yaml:2: policy.confirm[0]: an alias refers to the block that contains it (a loop)"
    ]


@pytest.mark.parametrize(
    "text",
    [
        "services: " + "[" * 10_000 + "]" * 10_000 + "\n",  # beyond libyaml's own limit
        "services: " + "[" * 200 + "]" * 200 + "\n",  # within it
        "services:\n" + "".join("  " * i + "- \n" for i in range(1, 120)),  # block style
    ],
    ids=["flow-10000", "flow-200", "block-120"],
)
def test_deep_nesting_is_refused(tmp_path, text):
    path = tmp_path / "deep.yaml"
    path.write_text(text)
    line = one_line(validate(path))
    assert f"nested more than {MAX_DEPTH} levels deep" in line
    with pytest.raises(ConfigError):  # in-process too: no RecursionError on either path
        parse(text, "c.yaml")


@pytest.mark.parametrize(
    ("depth", "expected"),
    [(200, ":2: YAML syntax error: did not find expected node content"), (5000, f":1: nested more than {MAX_DEPTH}")],
)
def test_deep_nesting_that_breaks_off_is_one_problem(tmp_path, depth, expected):
    path = tmp_path / "deep.yaml"
    path.write_text("services: " + "[" * depth + "\n")
    assert one_line(validate(path)).startswith(f"{path}{expected}")


def test_nesting_within_the_bound_is_not_refused_for_depth():
    text = "services: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "\n"
    assert not any("nested" in line for line in problems(text))


def test_a_config_over_the_size_cap_is_refused_unread(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("# padding\n" * (MAX_CONFIG_BYTES // 10 + 1))
    line = one_line(validate(path))
    assert (
        line
        == f"{path}: cannot read config: it is larger than 1 MiB, the limit for a config file; is it the right file?"
    )


def test_too_many_values_without_aliases_are_refused():
    text = "policy:\n  confirm: [" + ", ".join(["{}"] * (MAX_VALUES + 1)) + "]\n"
    assert len(text) < MAX_CONFIG_BYTES
    assert problems(text) == [f"c.yaml:2: policy.confirm: more than {MAX_VALUES} values: too large for a config file"]


def test_a_file_wrong_throughout_lists_the_first_problems_only():
    services = "".join(f"  - {{name: s{i}, tier: 1, owner: t, colour: red}}\n" for i in range(200))
    lines = problems("services:\n" + services)
    assert len(lines) == 51
    assert lines[0] == "c.yaml:2: services.s0.colour: unknown key; check the spelling (see config/schema.json)"
    assert lines[-1] == "c.yaml: … and 150 more problems"


def test_fifo_is_refused_without_blocking(tmp_path):
    path = tmp_path / "opsctl.yaml"
    os.mkfifo(path)
    assert one_line(validate(path)) == (
        f"{path}: cannot read config: it is a named pipe (FIFO), not a regular file; give the path of a YAML file"
    )


def test_character_device_is_refused_unread():
    assert one_line(validate("/dev/zero")) == (
        "/dev/zero: cannot read config: it is a character device, not a regular file; give the path of a YAML file"
    )


def test_directory(tmp_path):
    assert one_line(validate(tmp_path)) == (
        f"{tmp_path}: cannot read config: it is a directory; give the path of a YAML file"
    )


def test_symlink_loop(tmp_path):
    (tmp_path / "a.yaml").symlink_to(tmp_path / "b.yaml")
    (tmp_path / "b.yaml").symlink_to(tmp_path / "a.yaml")
    assert one_line(validate(tmp_path / "a.yaml")) == (
        f"{tmp_path / 'a.yaml'}: cannot read config: too many levels of symbolic links (a symlink loop?); "
        "check where the path points"
    )


@contextmanager
def unprivileged():
    """Permissions bind root only after dropping to nobody (the real uid stays, to come back)."""
    if os.geteuid() != 0:
        yield
        return
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)


def test_permission_denied(tmp_path):
    path = tmp_path / "opsctl.yaml"
    path.write_text("version: 1\n")
    path.chmod(0)
    with unprivileged(), pytest.raises(ConfigError) as info:
        load(Source(path, "--config"))
    assert info.value.lines() == [
        f"{path}: cannot read config: permission denied; make the file readable for this user"
    ]


def test_invalid_utf8_names_the_line(tmp_path):
    path = tmp_path / "opsctl.yaml"
    path.write_bytes(b"version: 1\n# caf\xe9 in latin-1\n")
    assert one_line(validate(path)) == f"{path}:2: not UTF-8 text (byte 0xe9): save the config as UTF-8"


def test_control_characters_are_a_syntax_problem():
    assert problems("version: 1\ndefault_env: pro\x01d\n") == [
        "c.yaml:2: YAML syntax error: unacceptable character #x0001: remove it (is this a text file?)"
    ]
