"""The wheel that ``pip install .`` builds ships every package and runs for real.

Measured before: a hand-written package list left ``opsctl.incidents`` out, so
after a non-editable install every ``incident`` command died with
ModuleNotFoundError, while the editable dev install hid it.  Here the wheel is
built from a copy of the working tree (building in place would write build/
and egg-info into a tree other runs share), installed into a fresh venv with no
index, and its console script is run.  The venv gets its dependencies from the
dev venv's site-packages as a plain path in a ``.pth`` file: plain paths are
appended without processing the ``.pth`` files inside them, so the dev venv's
editable-install hook never loads and ``opsctl`` can only come from the wheel.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO

NOT_BUILD_INPUT = (".git", ".venv", "build", "dist", "tests", "bench", "*.egg-info", "__pycache__", ".*_cache")
HANG_GUARD = 180  # seconds; a build takes a few


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path
    root: Path
    tree: Path

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def opsctl(self) -> Path:
        return self.venv / "bin" / "opsctl"


def offline_env(**extra: str) -> dict[str, str]:
    """The environment without anything that could point Python or pip elsewhere (or at the network)."""
    drop = ("OPSCTL_", "PYTHON", "PIP_", "VIRTUAL_ENV", "XDG_")
    env = {name: value for name, value in os.environ.items() if not name.startswith(drop)}
    env.update(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_CONFIG_FILE=os.devnull, PYTHONNOUSERSITE="1")
    env.update(extra)
    return env


def run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=env or offline_env(),
        capture_output=True,
        text=True,
        timeout=HANG_GUARD,
    )


def must(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, f"{proc.args} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("wheel")
    tree, dist, venv = root / "tree", root / "dist", root / "venv"
    shutil.copytree(REPO, tree, ignore=shutil.ignore_patterns(*NOT_BUILD_INPUT), symlinks=True)
    pip = (sys.executable, "-m", "pip")
    must(run(*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", dist, tree, cwd=root))
    (wheel,) = dist.glob("opsctl-*.whl")
    must(run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=root))
    must(run(*pip, "--python", venv / "bin" / "python", "install", "--no-deps", "--no-index", "-q", wheel, cwd=root))
    site = Path(
        must(
            run(venv / "bin" / "python", "-c", "import site; print(site.getsitepackages()[0])", cwd=root)
        ).stdout.strip()
    )
    dev_paths = dict.fromkeys(sysconfig.get_paths()[key] for key in ("purelib", "platlib"))
    (site / "zz_opsctl_test_dependencies.pth").write_text("".join(f"{path}\n" for path in dev_paths))
    return Installed(wheel, venv, root, tree)


MAPPED = {"opsctl": REPO / "src" / "opsctl", "opsctl/commands": REPO / "commands", "opsctl/defaults": REPO / "config"}


def source_packages() -> dict[str, Path]:
    """Every package the working tree defines, by its path in the wheel: each dir with an __init__.py."""
    found = {}
    for package, base in MAPPED.items():
        for init in base.rglob("__init__.py"):
            relative = init.parent.relative_to(base).as_posix()
            found[package if relative == "." else f"{package}/{relative}"] = init.parent
    return found


def test_the_wheel_ships_every_package_module_and_the_default_config(installed: Installed):
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    packages = source_packages()
    assert {"opsctl", "opsctl/incidents", "opsctl/state", "opsctl/commands", "opsctl/defaults"} <= set(packages)
    missing = [
        f"{package}/{module.name}"
        for package, directory in packages.items()
        for module in directory.glob("*.py")
        if f"{package}/{module.name}" not in names
    ]
    assert not missing, f"the wheel leaves out {missing}"
    assert {"opsctl/defaults/opsctl.example.yaml", "opsctl/defaults/schema.json"} <= names
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]


def test_the_sdist_carries_every_package_and_the_default_config(installed: Installed):
    """``python -m build`` and PyPI installs go through the sdist: it must hold what the wheel needs."""
    out = installed.root / "sdist"
    build = f"from setuptools import build_meta; build_meta.build_sdist({str(out)!r})"
    must(run(sys.executable, "-c", build, cwd=installed.tree))
    (sdist,) = out.glob("opsctl-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    needed = {
        module.relative_to(REPO).as_posix()
        for directory in source_packages().values()
        for module in directory.glob("*.py")
    }
    needed |= {"config/opsctl.example.yaml", "config/schema.json", "pyproject.toml", "README.md"}
    assert not needed - names, f"the sdist leaves out {sorted(needed - names)}"


def test_opsctl_is_imported_from_the_wheel_not_the_checkout(installed: Installed):
    packages = sorted(path.replace("/", ".") for path in source_packages())
    probe = (
        "import importlib, json, sys; "
        f"files = {{name: importlib.import_module(name).__file__ for name in {packages!r}}}; "
        "print(json.dumps({'files': files, 'editable': sorted(m for m in sys.modules if 'editable' in m)}))"
    )
    found = json.loads(must(run(installed.python, "-c", probe, cwd=installed.root)).stdout)
    assert found["editable"] == []
    elsewhere = {name: file for name, file in found["files"].items() if not file.startswith(str(installed.venv))}
    assert not elsewhere, f"imported from outside the wheel's venv: {elsewhere}"
    assert found["files"]["opsctl.defaults"].startswith(str(installed.venv))


def test_the_console_script_declares_and_lists_an_incident(installed: Installed, tmp_path: Path):
    work, home = tmp_path / "work-dir", tmp_path / "home-dir"
    work.mkdir()
    home.mkdir()
    env = offline_env(OPSCTL_STATE_DIR=str(tmp_path / "state-dir"), HOME=str(home), COLUMNS="200", NO_COLOR="1")
    declared = run(
        installed.opsctl,
        "-o",
        "json",
        "incident",
        "declare",
        "api",
        "--sev",
        "2",
        "--title",
        "wheel test",
        cwd=work,
        env=env,
    )
    assert declared.returncode == 0, declared.stderr
    incident = json.loads(declared.stdout)
    assert isinstance(incident, dict) and incident["id"] and incident["title"] == "wheel test"

    listed = run(installed.opsctl, "-o", "json", "incident", "list", cwd=work, env=env)
    assert listed.returncode == 0, listed.stderr
    assert [row["id"] for row in json.loads(listed.stdout)] == [incident["id"]]
    table = run(installed.opsctl, "incident", "list", cwd=work, env=env)
    assert table.returncode == 0, table.stderr
    assert incident["id"] in table.stdout and "wheel test" in table.stdout
    assert (tmp_path / "state-dir").is_dir()  # the state went where it was told, not into the checkout
