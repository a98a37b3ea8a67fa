"""Plugins: artifact formats, runtimes, transports and target profiles come through one tiny pluggy hook spec, from
the built-ins (DEFAULT_PLUGINS) and from every package that declares an `edgekit` entry point — the same hooks for
both (the `llm` pattern). A plugin is a module (or object) with any of these functions, each marked `@hookimpl`:

    from edgekit.plugins import hookimpl

    @hookimpl
    def register_formats(register):      # register(edgekit.formats.Format(...))
    @hookimpl
    def register_runtimes(register):     # register(a Runtime, or a class whose instances are Runtimes)
    @hookimpl
    def register_transports(register):   # register(edgekit.targets.transports.TransportKind(...))
    @hookimpl
    def register_targets(register):      # register(name, a TargetProfile | TOML-layout dict | path | callable)

and is installed with `[project.entry-points.edgekit] NAME = "package.module"` (docs/targets.md). The manager is
built once per process: the built-ins, then the entry points (read once); each registry (edgekit.formats,
edgekit.runtime, edgekit.targets.transports, edgekit.targets.profile) caches what the hooks registered until a plugin
is added or removed here. Nothing heavy is imported to register: functions are named by import path or imported when
used, so listing plugins never loads torch or a converter.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import pluggy

from edgekit.errors import EdgekitError

__all__ = ["DEFAULT_PLUGINS", "ENTRY_POINT_GROUP", "Registration", "gather", "generation", "hookimpl", "manager",
           "plugin_infos", "register", "reset", "unregister"]

ENTRY_POINT_GROUP = "edgekit"
# The built-ins, registered through the same hooks as third parties, before them (a plugin may replace a built-in
# of the same name: the later registration wins).
DEFAULT_PLUGINS: tuple[str, ...] = ("edgekit.formats", "edgekit.runtime", "edgekit.targets.transports")
HOOKS = ("register_formats", "register_runtimes", "register_transports", "register_targets")

hookspec = pluggy.HookspecMarker("edgekit")
hookimpl = pluggy.HookimplMarker("edgekit")


class Hookspecs:
    @hookspec
    def register_formats(self, register: Callable[..., Any]) -> None:
        """Register artifact formats: `register(Format(...))` (edgekit.formats.Format)."""

    @hookspec
    def register_runtimes(self, register: Callable[..., Any]) -> None:
        """Register runtimes: `register(runtime)` — an object (or a class) with name, formats, available(),
        version(), load(path, options) (edgekit.runtime.base.Runtime)."""

    @hookspec
    def register_transports(self, register: Callable[..., Any]) -> None:
        """Register transport kinds: `register(TransportKind(...))` (edgekit.targets.transports)."""

    @hookspec
    def register_targets(self, register: Callable[..., Any]) -> None:
        """Register target profiles: `register(name, source)`, source a TargetProfile, a dict in the TOML layout, a
        path to a TOML file, or a callable returning one of these (called when the target is asked for)."""


Registration = tuple[str, tuple[Any, ...]]  # (plugin name, the arguments of one register(...) call)

_manager: pluggy.PluginManager | None = None
_generation = 0
_gathered: dict[str, list[Registration]] = {}


def manager() -> pluggy.PluginManager:
    """The plugin manager, built on first use: DEFAULT_PLUGINS, then the `edgekit` entry points (read once)."""
    global _manager
    if _manager is None:
        pm = pluggy.PluginManager("edgekit")
        pm.add_hookspecs(Hookspecs)
        for name in DEFAULT_PLUGINS:
            pm.register(importlib.import_module(name), name)
        try:
            pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
        except Exception as exc:
            raise EdgekitError(f"an edgekit plugin (entry point group {ENTRY_POINT_GROUP!r}) failed to load "
                               f"({type(exc).__name__}: {exc})", "fix or uninstall the plugin package") from exc
        _manager = pm
        _changed()
    return _manager


def _changed() -> None:
    global _generation
    _generation += 1
    _gathered.clear()


def generation() -> int:
    """A number that changes whenever the set of plugins does (registries rebuild their caches on a change)."""
    manager()
    return _generation


def register(plugin: Any, name: str | None = None) -> str:
    """Add a plugin in this process (a module or object with @hookimpl functions); returns its name."""
    registered = manager().register(plugin, name)
    _changed()
    return str(registered)


def unregister(name: str) -> None:
    """Remove a plugin added with `register` (or any plugin, by name)."""
    manager().unregister(name=name)
    _changed()


def reset() -> None:
    """Forget the manager: the next use rebuilds it and reads the entry points again (tests that install a plugin
    on sys.path call this)."""
    global _manager
    _manager = None
    _gathered.clear()


def gather(hook: str) -> list[Registration]:
    """Every `register(...)` call made through `hook`, as (plugin name, arguments), plugins in registration order
    (built-ins first). Cached until the plugins change."""
    pm = manager()
    if hook not in _gathered:
        names = {id(p): n for n, p in pm.list_name_plugin()}
        found: list[Registration] = []
        for impl in getattr(pm.hook, hook).get_hookimpls():  # registration order; pluggy would call them LIFO
            plugin = names.get(id(impl.plugin), impl.plugin_name)
            try:
                impl.function(register=lambda *args, _p=plugin: found.append((_p, args)))
            except EdgekitError:
                raise
            except Exception as exc:
                raise EdgekitError(f"edgekit plugin {plugin!r} failed in {hook} ({type(exc).__name__}: {exc})",
                                   "fix or uninstall the plugin (`edgekit plugins` lists them)") from exc
        _gathered[hook] = found
    return list(_gathered[hook])


def plugin_infos(builtins: bool = False) -> list[dict[str, Any]]:
    """The installed plugins (with `builtins`, DEFAULT_PLUGINS too): name, version, hooks, and the names of what
    each registered through each hook."""
    pm = manager()
    dists = {id(p): d for p, d in pm.list_plugin_distinfo()}
    registered: dict[str, dict[str, list[str]]] = {}
    for hook in HOOKS:
        for plugin, args in gather(hook):
            registered.setdefault(plugin, {}).setdefault(hook.removeprefix("register_"), []).append(_label(args))
    infos = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None or (name in DEFAULT_PLUGINS and not builtins):
            continue
        dist = dists.get(id(plugin))
        infos.append({"name": dist.project_name if dist else name, "plugin": name,
                      "version": dist.version if dist else None, "builtin": name in DEFAULT_PLUGINS,
                      "hooks": sorted(h.name for h in pm.get_hookcallers(plugin) or []),
                      **{k: registered.get(name, {}).get(k, []) for k in (h.removeprefix("register_") for h in HOOKS)}})
    return infos


def _label(args: tuple[Any, ...]) -> str:
    """The name of a registered thing: a target's name argument, else the object's (or class's) `name`."""
    if len(args) >= 2 and isinstance(args[0], str):
        return args[0]
    obj = args[0] if args else None
    return str(getattr(obj, "name", None) or getattr(obj, "__name__", None) or obj)
