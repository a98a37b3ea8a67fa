"""Plugins (edgekit.plugins): the built-ins register through the same hooks as third parties; a toy plugin adds a
format, a runtime, a transport kind and a target — in this process (`plugins.register`) and as a real installed
package (a dist-info with an `edgekit` entry point on sys.path), seen by `edgekit plugins` and `edgekit targets
list`; entry points are read once; a broken plugin is one line; loading plugins imports no converter."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from reportdata import run_main
from test_targets import MINIMAL

from edgekit import plugins
from edgekit.errors import EdgekitError

TOY_PLUGIN = f'''
from edgekit.formats import Format
from edgekit.plugins import hookimpl
from edgekit.targets.transports import TransportKind


class ToyTransport:
    provenance = "measured"

    def __init__(self, name):
        self.name = name


def open_toy(profile, spec, options):
    return ToyTransport(profile.name), ""


class ToyRuntime:
    name = "toyrt"
    formats = ("toy",)

    def available(self):
        return True

    def version(self):
        return "0.1"

    def load(self, path, options=None):
        raise NotImplementedError


@hookimpl
def register_formats(register):
    register(Format("toy", (".toy",), ("fp32",), ("numpy",), "toyrt", "toyplug:export"))


@hookimpl
def register_runtimes(register):
    register(ToyRuntime)


@hookimpl
def register_transports(register):
    register(TransportKind("toywire", open_toy, "a toy transport", "plug the toy in"))


@hookimpl
def register_targets(register):
    import tomllib

    register("toyboard", tomllib.loads({MINIMAL.format(name="toyboard").replace('"ssh"', '"toywire"')!r}))
'''


@pytest.fixture
def toy_module(tmp_path, monkeypatch):
    """The toy plugin as an importable module `toyplug` (not registered)."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "toyplug.py").write_text(TOY_PLUGIN)
    monkeypatch.syspath_prepend(str(site))
    import toyplug

    yield toyplug, site
    sys.modules.pop("toyplug", None)


@pytest.fixture
def toy_registered(toy_module):
    module, _site = toy_module
    plugins.register(module, "toyplug")
    yield module
    plugins.unregister("toyplug")


def test_builtins_register_through_the_hooks():
    from edgekit.formats import all_formats
    from edgekit.runtime import all_runtimes
    from edgekit.targets.transports import transport_kinds

    names = [n for n, _ in plugins.manager().list_name_plugin()]
    assert names[: len(plugins.DEFAULT_PLUGINS)] == list(plugins.DEFAULT_PLUGINS)
    by_plugin = {i["plugin"]: i for i in plugins.plugin_infos(builtins=True)}
    assert by_plugin["edgekit.formats"]["formats"] == list(all_formats())
    assert by_plugin["edgekit.runtime"]["runtimes"] == list(all_runtimes())
    assert by_plugin["edgekit.targets.transports"]["transports"] == list(transport_kinds())[1:]
    assert set(transport_kinds()) == {"local", "ssh", "adb", "macos", "command"}
    assert not any(i["builtin"] for i in plugins.plugin_infos())  # `edgekit plugins` without --all: third parties


def test_a_plugin_registered_in_process_adds_a_format_runtime_transport_and_target(toy_registered):
    from edgekit.formats import format_for_suffix, get_format
    from edgekit.runtime import get_runtime, runtime_for_format
    from edgekit.targets.profile import list_profiles, load_target
    from edgekit.targets.remote import DeviceOptions, make_transport

    assert get_format("toy").suffix == ".toy" and format_for_suffix("m.fp32.toy").name == "toy"
    assert get_runtime("toyrt").version() == "0.1" and runtime_for_format("toy").name == "toyrt"
    assert "toyboard" in list_profiles()
    board = load_target("toyboard")
    assert board.transport.kind == "toywire" and board.path == "plugin toyplug target toyboard"
    transport, why = make_transport(board, DeviceOptions())
    assert type(transport).__name__ == "ToyTransport" and transport.name == "toyboard" and why == ""

    shown = run_main("plugins", "--json")
    assert shown.returncode == 0, shown.stderr
    info = next(i for i in json.loads(shown.stdout) if i["plugin"] == "toyplug")
    assert info["name"] == "toyplug" and info["formats"] == ["toy"] and info["transports"] == ["toywire"]
    assert info["runtimes"] == ["toyrt"] and info["targets"] == ["toyboard"]
    listed = {t["name"]: t for t in json.loads(run_main("targets", "list", "--json").stdout)}
    assert listed["toyboard"]["transport"] == "toywire"


def test_unregistering_forgets_what_it_registered(toy_module):
    from edgekit.formats import format_names
    from edgekit.targets.transports import transport_kinds

    plugins.register(toy_module[0], "toyplug")
    assert "toy" in format_names() and "toywire" in transport_kinds()
    plugins.unregister("toyplug")
    assert "toy" not in format_names() and "toywire" not in transport_kinds()
    with pytest.raises(EdgekitError, match="unknown transport kind 'toywire'"):
        from edgekit.targets.transports import get_transport_kind

        get_transport_kind("toywire")


def _install(site: Path, group: str = "edgekit", value: str = "toyplug") -> None:
    dist = site / "toyplug-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toyplug\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[{group}]\ntoyplug = {value}\n")


def test_an_installed_plugin_appears_in_the_cli(toy_module, tmp_path):
    """A real installed package: a dist-info with an `edgekit` entry point, seen by a fresh `edgekit` process."""
    _module, site = toy_module
    _install(site)
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "wired.toml").write_text(MINIMAL.format(name="wired").replace('"ssh"', '"toywire"'))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
           "EDGEKIT_TARGETS": str(profiles)}

    def edgekit(*args: str) -> subprocess.CompletedProcess:
        proc = subprocess.run([sys.executable, "-m", "edgekit.cli", *args], capture_output=True, text=True, env=env,
                              timeout=120)
        assert proc.returncode == 0, proc.stderr
        return proc

    info = next(i for i in json.loads(edgekit("plugins", "--json").stdout) if i["plugin"] == "toyplug")
    assert (info["name"], info["version"], info["builtin"]) == ("toyplug", "0.1", False)
    assert info["formats"] == ["toy"] and info["transports"] == ["toywire"]
    assert "toywire" in edgekit("plugins").stdout
    listed = {t["name"]: t for t in json.loads(edgekit("targets", "list", "--json").stdout)}
    assert listed["wired"]["transport"] == "toywire" and listed["wired"]["error"] is None
    assert listed["toyboard"]["transport"] == "toywire"
    # without the plugin, the same profile names an unknown transport kind, in one line
    bare = {k: v for k, v in env.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-m", "edgekit.cli", "targets", "show", str(profiles / "wired.toml")],
                          capture_output=True, text=True, env=bare, timeout=120)
    assert proc.returncode == 2 and "unknown transport kind 'toywire'" in proc.stderr


def test_an_installed_plugin_is_read_in_process_after_reset(toy_module):
    _module, site = toy_module
    _install(site)
    plugins.reset()
    try:
        from edgekit.formats import get_format

        assert get_format("toy").runtime == "toyrt"
        assert "toyplug" in [i["name"] for i in plugins.plugin_infos()]
    finally:
        sys.path.remove(str(site))
        plugins.reset()
    assert "toyplug" not in [i["name"] for i in plugins.plugin_infos()]


def test_entry_points_are_read_once(monkeypatch):
    """After the first use, listing runtimes, formats, transports and targets reads no entry point again (the
    runtime registry used to re-read its group on every call)."""
    from edgekit.formats import all_formats
    from edgekit.runtime import all_runtimes
    from edgekit.targets.profile import list_profiles
    from edgekit.targets.transports import transport_kinds

    def warm() -> None:
        all_runtimes(), all_formats(), transport_kinds(), list_profiles()

    warm()

    def refuse(*_a, **_k):
        raise AssertionError("entry points read again")

    for target in (importlib.metadata, *(sys.modules[m] for m in ("edgekit.runtime", "edgekit.targets.profile"))):
        for name in ("entry_points", "distributions"):
            monkeypatch.setattr(target, name, refuse, raising=False)
    for _ in range(3):
        warm()


def test_a_broken_plugin_is_one_line(toy_module):
    _module, site = toy_module
    (site / "brokenplug.py").write_text("raise RuntimeError('kaput')\n")
    _install(site, value="brokenplug")
    env = {**os.environ, "PYTHONPATH": str(site)}
    proc = subprocess.run([sys.executable, "-m", "edgekit.cli", "plugins"], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "edgekit plugin" in proc.stderr and "kaput" in proc.stderr and "fix:" in proc.stderr


def test_a_plugin_that_registers_the_wrong_thing_is_named(toy_module):
    class Wrong:
        @plugins.hookimpl
        def register_transports(self, register):
            register("not a TransportKind")

        @plugins.hookimpl
        def register_formats(self, register):
            register({"name": "dict"})

    plugins.register(Wrong(), "wrongplug")
    try:
        from edgekit.formats import format_names
        from edgekit.targets.transports import transport_kinds

        with pytest.raises(EdgekitError, match="edgekit plugin 'wrongplug' registered 'not a TransportKind'"):
            transport_kinds()
        with pytest.raises(EdgekitError, match="edgekit plugin 'wrongplug' registered dict as a format"):
            format_names()
    finally:
        plugins.unregister("wrongplug")


def test_loading_plugins_imports_no_converter():
    code = textwrap.dedent("""
        import sys
        from edgekit import plugins
        from edgekit.formats import all_formats
        from edgekit.runtime import all_runtimes
        from edgekit.targets.profile import list_profiles
        all_formats(); all_runtimes(); list_profiles(); plugins.plugin_infos(builtins=True)
        heavy = [m for m in ("torch", "onnxruntime", "ai_edge_litert", "coremltools", "asyncssh", "adbutils")
                 if m in sys.modules]
        print(heavy)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
