"""Transport kinds: how edgekit reaches a device. A profile's `[transport] kind` names one; `local` is this machine
and needs none. The kinds come from the `register_transports` plugin hook (edgekit.plugins): the built-ins (ssh,
adb, macos, command) register below like a third-party plugin does, each with an opener named by import path, so
nothing (asyncssh, adbutils) is imported until a device is reached.

An opener is `open(profile, spec, options) -> (Transport | None, why)`: the transport, or None and why no device is
configured (the caller then predicts), raising instead when the user named a device that cannot be set up.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edgekit import plugins
from edgekit.errors import EdgekitError

__all__ = ["TransportKind", "get_transport_kind", "open_transport", "transport_kinds"]

LOCAL = "local"


@dataclass(frozen=True)
class TransportKind:
    """One way to reach a device. `opener`: a callable or "module:function" (see the module docstring); `fix`: the
    hint when no device is configured (`{path}` becomes the profile's file)."""

    name: str
    opener: str | Callable[..., tuple[Any, str]]
    description: str = ""
    fix: str = "configure its [transport]"

    def open(self, profile: Any, spec: Any, options: Any) -> tuple[Any, str]:
        opener = self.opener
        if isinstance(opener, str):
            module, _, func = opener.partition(":")
            opener = getattr(importlib.import_module(module), func)
        return opener(profile, spec, options)


_cache: tuple[int, dict[str, TransportKind]] | None = None


def _registry() -> dict[str, TransportKind]:
    global _cache
    gen = plugins.generation()
    if _cache is None or _cache[0] != gen:
        found: dict[str, TransportKind] = {}
        for plugin, (kind, *_rest) in plugins.gather("register_transports"):
            if not isinstance(kind, TransportKind) or kind.name == LOCAL:
                raise EdgekitError(f"edgekit plugin {plugin!r} registered {kind!r} as a transport",
                                   "register edgekit.targets.transports.TransportKind(name, opener), not 'local'")
            found[kind.name] = kind
        _cache = (gen, found)
    return _cache[1]


def transport_kinds() -> tuple[str, ...]:
    """Every kind a profile may name: `local`, then the registered ones (built-ins first)."""
    return (LOCAL, *_registry())


def get_transport_kind(name: str) -> TransportKind:
    kinds = _registry()
    if name not in kinds:
        raise EdgekitError(f"unknown transport kind {name!r}", f"use one of {', '.join(transport_kinds())}")
    return kinds[name]


def open_transport(profile: Any, spec: Any, options: Any) -> tuple[Any, str]:
    """The transport of `spec.kind` for `profile` (edgekit.targets.remote.make_transport)."""
    try:
        kind = get_transport_kind(spec.kind)
    except EdgekitError as exc:
        raise EdgekitError(f"target {profile.name}: {exc.problem}", exc.fix) from exc
    return kind.open(profile, spec, options)


# -- the built-ins --------------------------------------------------------------------------------------------------

def _no_host(profile: Any) -> tuple[None, str]:
    return None, f"no device address for {profile.name} (give --host, or set [transport] host in its profile)"


def open_ssh(profile: Any, spec: Any, options: Any) -> tuple[Any, str]:
    if not spec.host:
        return _no_host(profile)
    from edgekit.targets.transports.ssh import SSHTransport

    return SSHTransport(profile.name, spec, trust_on_first_use=options.trust_on_first_use,
                        retry_delay_s=options.retry_delay_s), ""


def open_macos(profile: Any, spec: Any, options: Any) -> tuple[Any, str]:
    if not spec.host:
        return _no_host(profile)
    from edgekit.targets.transports.macos import MacOSTransport

    return MacOSTransport(profile.name, spec, trust_on_first_use=options.trust_on_first_use,
                          retry_delay_s=options.retry_delay_s), ""


def open_adb(profile: Any, spec: Any, options: Any) -> tuple[Any, str]:
    from edgekit.targets.transports.adb import AdbTransport

    transport = AdbTransport(profile.name, spec)
    if not options.explicit():
        try:
            transport.device()
        except EdgekitError as exc:
            return None, exc.problem
    return transport, ""


def open_command(profile: Any, spec: Any, options: Any) -> tuple[Any, str]:
    from edgekit.targets.transports.command import CommandTransport

    transport = CommandTransport(profile.name, spec)
    ok, why = transport.available()
    if not ok and not options.explicit():
        return None, f"the device command {why}"
    return transport, ""


@plugins.hookimpl
def register_transports(register: Callable[[TransportKind], None]) -> None:
    """The built-in kinds (this package is one of edgekit.plugins.DEFAULT_PLUGINS)."""
    here = __name__
    register(TransportKind("ssh", f"{here}:open_ssh", "Linux boards over SSH (asyncssh), the agent runs there",
                           "pass --host ADDRESS (and --user), or set [transport] host in its profile"))
    register(TransportKind("adb", f"{here}:open_adb", "Android over adb (adbutils)",
                           "start the adb server (`adb start-server`) and plug the phone in with USB debugging on"))
    register(TransportKind("macos", f"{here}:open_macos", "CoreML on a Mac over SSH",
                           "pass --host of a Mac with Remote Login on (and --user)"))
    register(TransportKind("command", f"{here}:open_command", "a configured command that prints a JSON line",
                           "install the device command or set [transport] command in {path} (protocol: "
                           "docs/targets.md)"))


@plugins.hookimpl
def register_targets(register: Callable[..., None]) -> None:
    """Profiles of packages that use the older `edgekit.targets` entry point group (an entry point naming a
    function that returns a TargetProfile, a TOML-layout dict or a path), read once."""
    from importlib.metadata import entry_points

    for ep in entry_points(group="edgekit.targets"):
        register(ep.name, _EntryPointSource(ep))


@dataclass(frozen=True)
class _EntryPointSource:
    """A target profile behind an entry point, loaded when that target is asked for."""

    ep: Any

    def __call__(self) -> Any:
        obj = self.ep.load()
        return obj() if callable(obj) and not isinstance(obj, type) else obj

    @property
    def where(self) -> str:
        return f"entry point {self.ep.name} ({self.ep.value})"
