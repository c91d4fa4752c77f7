"""Install the agent CLIs at the versions the presets were checked against (PINNED_VERSIONS).

Into a cache folder, ``$PLANRUN_AGENT_CACHE`` or ``~/.cache/planrun-agents``:

- npm packages with ``npm install --prefix <cache>/npm PKG@VERSION --no-audit --no-fund``;
- PyPI packages into their own virtualenv ``<cache>/venv-<package>``.

A package already installed at its pinned version is left alone, so a second run costs a few file
reads. Usage: ``python -m tests.agents.install [PRESET ...]`` (default: every pinned preset). It
prints what it did; exit status 2 means a registry could not be reached (said so, with the
registry's address), 1 that an install failed.

Tests use ``ensure(presets)`` (raises ``RegistryUnreachable`` or ``InstallError``) and
``agent_bin(preset)`` (the installed executable, or None).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from planrun.plan.presets import PINNED_VERSIONS, PRESETS, UNCHECKABLE

# Installed by the tests by default. aider-chat is a ~700 MB pip install that took 98 s on the
# 2-core CI machine (the five npm CLIs together: 34-53 s), so the tests check aider's flags
# against the docs in its wheel (see pypi_wheel) unless PLANRUN_AGENTS_FULL=1 asks for it all.
SLOW = frozenset({"aider"})

PROBE_TIMEOUT = 15.0
NPM_TIMEOUT = 900.0
PIP_TIMEOUT = 900.0


class InstallError(RuntimeError):
    """An install command failed for a reason other than an unreachable registry."""


class RegistryUnreachable(InstallError):
    """The package registry did not answer: the caller may skip, saying so."""


def cache_dir() -> Path:
    configured = os.environ.get("PLANRUN_AGENT_CACHE")
    base = Path(configured) if configured else Path.home() / ".cache" / "planrun-agents"
    return base.expanduser()


def executable_name(preset: str) -> str:
    command = PRESETS[preset]["command"]
    if not isinstance(command, list) or not command:
        raise InstallError(f"{preset}: the preset has no command")
    return str(command[0])


def _venv(package: str) -> Path:
    return cache_dir() / f"venv-{package}"


def _npm_prefix() -> Path:
    return cache_dir() / "npm"


def installed_version(preset: str) -> str | None:
    registry, package, _ = PINNED_VERSIONS[preset]
    if registry == "npm":
        manifest = _npm_prefix() / "node_modules" / package / "package.json"
        try:
            return str(json.loads(manifest.read_text())["version"])
        except (OSError, ValueError, KeyError):
            return None
    python = _venv(package) / "bin" / "python"
    if not python.exists():
        return None
    probe = subprocess.run(
        [str(python), "-c", f"import importlib.metadata as m; print(m.version({package!r}))"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return (probe.stdout.strip() or None) if probe.returncode == 0 else None


def agent_bin(preset: str) -> Path | None:
    """The executable of ``preset`` installed at its pinned version, or None."""
    if preset not in PINNED_VERSIONS:
        return None
    registry, package, version = PINNED_VERSIONS[preset]
    if installed_version(preset) != version:
        return None
    if registry == "npm":
        path = _npm_prefix() / "node_modules" / ".bin" / executable_name(preset)
    else:
        path = _venv(package) / "bin" / executable_name(preset)
    return path if path.exists() else None


def presets_for_tests() -> list[str]:
    """The presets the test suite installs: all pinned ones with PLANRUN_AGENTS_FULL=1."""
    full = os.environ.get("PLANRUN_AGENTS_FULL", "") not in ("", "0")
    return sorted(p for p in PINNED_VERSIONS if full or p not in SLOW)


# -- reaching the registries -----------------------------------------------------------------
def registry_url(registry: str) -> str:
    if registry == "npm":
        url = os.environ.get("NPM_CONFIG_REGISTRY")
        if not url and shutil.which("npm"):
            got = subprocess.run(
                ["npm", "config", "get", "registry"],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            url = got.stdout.strip()
        return url or "https://registry.npmjs.org/"
    return os.environ.get("PIP_INDEX_URL") or "https://pypi.org/simple/"


def probe_registry(registry: str) -> None:
    """Raise RegistryUnreachable unless the registry answers an HTTP request (any status)."""
    url = registry_url(registry)
    target = url.rstrip("/") + ("/-/ping" if registry == "npm" else "/pip/")
    try:
        with urllib.request.urlopen(target, timeout=PROBE_TIMEOUT) as response:
            response.read(1)
    except urllib.error.HTTPError:
        return  # it answered: reachable, whatever it thinks of the path
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise RegistryUnreachable(
            f"the {registry} registry at {url} is unreachable: {reason}"
        ) from exc


# -- installing --------------------------------------------------------------------------------
@contextmanager
def _locked() -> Iterator[None]:
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".install.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(argv: Sequence[str], timeout: float, what: str) -> None:
    try:
        done = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise InstallError(f"{what}: timed out after {timeout:.0f}s") from exc
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-25:])
        raise InstallError(f"{what} failed (exit {done.returncode}):\n{tail}")


def _install_npm(specs: Sequence[tuple[str, str]]) -> None:
    prefix = _npm_prefix()
    prefix.mkdir(parents=True, exist_ok=True)
    if shutil.which("npm") is None:
        raise InstallError("npm is not on PATH (node and npm are needed for the npm agents)")
    argv = ["npm", "install", "--prefix", str(prefix)]
    argv += [f"{package}@{version}" for package, version in specs]
    argv += ["--no-audit", "--no-fund", "--loglevel=error"]
    _run(argv, NPM_TIMEOUT, " ".join(argv))


def _install_pypi(package: str, version: str) -> None:
    venv = _venv(package)
    python = venv / "bin" / "python"
    if not python.exists():
        _run([sys.executable, "-m", "venv", "--clear", str(venv)], 300, f"creating {venv}")
    argv = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    argv += [f"{package}=={version}"]
    _run(argv, PIP_TIMEOUT, " ".join(argv))


def pypi_wheel(preset: str) -> Path:
    """Download (once) the pinned wheel of a PyPI preset, without dependencies: its docs."""
    registry, package, version = PINNED_VERSIONS[preset]
    if registry != "pypi":
        raise InstallError(f"{preset} is not a PyPI package")
    folder = cache_dir() / "wheels"
    stem = f"{package.replace('-', '_')}-{version}-"
    with _locked():
        found = sorted(folder.glob(f"{stem}*.whl")) if folder.exists() else []
        if found:
            return found[0]
        probe_registry("pypi")
        folder.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check"]
        argv += ["-q", "--only-binary=:all:", "-d", str(folder), f"{package}=={version}"]
        _run(argv, 300, " ".join(argv))
        found = sorted(folder.glob(f"{stem}*.whl"))
        if not found:
            raise InstallError(f"pip download left no {stem}*.whl in {folder}")
        return found[0]


def ensure(presets: Iterable[str] | None = None, *, say: bool = True) -> dict[str, Path]:
    """Install ``presets`` (default: all pinned) at their pinned versions; return their binaries.

    Raises RegistryUnreachable when a registry that is needed does not answer, and
    InstallError when an install fails otherwise.
    """
    wanted = sorted(PINNED_VERSIONS if presets is None else set(presets))
    unknown = [p for p in wanted if p not in PINNED_VERSIONS]
    if unknown:
        reasons = "; ".join(UNCHECKABLE.get(p, "no pinned version") for p in unknown)
        raise InstallError(f"not installable: {unknown} ({reasons})")

    def note(message: str) -> None:
        if say:
            print(f"[install] {message}", flush=True)

    with _locked():
        missing = [p for p in wanted if agent_bin(p) is None]
        for preset in wanted:
            if preset not in missing:
                registry, package, version = PINNED_VERSIONS[preset]
                note(f"{preset}: {package}@{version} already installed")
        npm = [p for p in missing if PINNED_VERSIONS[p][0] == "npm"]
        pypi = [p for p in missing if PINNED_VERSIONS[p][0] == "pypi"]
        for registry, group in (("npm", npm), ("pypi", pypi)):
            if group:
                probe_registry(registry)
        if npm:
            specs = [PINNED_VERSIONS[p][1:] for p in npm]
            started = time.monotonic()
            _install_npm([(package, version) for package, version in specs])
            note(
                f"npm: installed {', '.join(f'{a}@{b}' for a, b in specs)} into "
                f"{_npm_prefix()} in {time.monotonic() - started:.1f}s"
            )
        for preset in pypi:
            _, package, version = PINNED_VERSIONS[preset]
            started = time.monotonic()
            _install_pypi(package, version)
            note(
                f"pypi: installed {package}=={version} into {_venv(package)} "
                f"in {time.monotonic() - started:.1f}s"
            )
        found: dict[str, Path] = {}
        for preset in wanted:
            path = agent_bin(preset)
            if path is None:
                registry, package, version = PINNED_VERSIONS[preset]
                raise InstallError(
                    f"{preset}: {package}@{version} is not installed after the install step "
                    f"(found {installed_version(preset)!r})"
                )
            found[preset] = path
        return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Install the pinned agent CLIs.")
    parser.add_argument("presets", nargs="*", help=f"default: {' '.join(sorted(PINNED_VERSIONS))}")
    args = parser.parse_args(argv)
    print(f"[install] cache: {cache_dir()}")
    for preset, reason in UNCHECKABLE.items():
        if not args.presets or preset in args.presets:
            print(f"[install] {preset}: skipped, {reason}")
    presets = [p for p in args.presets if p not in UNCHECKABLE] or (
        None if not args.presets else []
    )
    started = time.monotonic()
    try:
        found = ensure(presets)
    except RegistryUnreachable as exc:
        print(f"[install] ERROR: {exc}", file=sys.stderr)
        return 2
    except InstallError as exc:
        print(f"[install] ERROR: {exc}", file=sys.stderr)
        return 1
    for preset, path in sorted(found.items()):
        print(f"[install] {preset}: {path}")
    print(f"[install] done in {time.monotonic() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
