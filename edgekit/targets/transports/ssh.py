"""SSH transport (asyncssh): for a Raspberry Pi and any Linux board, and the base of the macOS bridge.

A run: connect (retrying refused/unreachable/timed-out connects with backoff), copy the agent and the artifact over
SFTP into `workdir` (skipped when a file of the same size is already there — artifacts are stored under their
sha256), run `python3 agent.py bench ...` built with shlex.join from a list (never by concatenating user input), read
the JSON result back.

Host keys are verified against known_hosts (the profile's `known_hosts`, else ~/.ssh/known_hosts). With
`trust_on_first_use`, a host that has no entry yet is accepted once and its key appended to that file; a host whose
recorded key differs is always refused. Passwords come only from $EDGEKIT_SSH_PASSWORD and never appear in messages.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import posixpath
import shlex
import time
from pathlib import Path
from typing import Any

from edgekit.errors import DeviceUnreachableError, EdgekitError
from edgekit.targets.profile import TransportSpec
from edgekit.targets.transports.base import (
    AGENT_PATH,
    AgentFailedError,
    CheckReport,
    DeviceDisconnectedError,
    Transport,
    agent_args,
    parse_agent_output,
)

PASSWORD_ENV = "EDGEKIT_SSH_PASSWORD"


def default_known_hosts() -> Path:
    return Path.home() / ".ssh" / "known_hosts"


def _agent_remote_name() -> str:
    digest = hashlib.sha256(AGENT_PATH.read_bytes()).hexdigest()[:12]
    return f"edgekit-agent-{digest}.py"


class SSHTransport(Transport):
    """Runs the agent on a device over SSH. Times in seconds."""

    kind = "ssh"
    provenance = "measured"

    def __init__(self, target: str, spec: TransportSpec, *, trust_on_first_use: bool = False,
                 password: str | None = None, retry_delay_s: float = 1.0) -> None:
        super().__init__(target)
        if not spec.host:
            raise EdgekitError(f"target {target!r} has no SSH host", f"pass --host ADDRESS (and --user) or set "
                               f"[transport] host in targets/{target}.toml")
        self.spec = spec
        self.host = spec.host
        self.port = int(spec.port or 22)
        self.user = spec.user or os.environ.get("USER") or "root"
        self.known_hosts = Path(spec.known_hosts).expanduser() if spec.known_hosts else default_known_hosts()
        self.trust_on_first_use = trust_on_first_use
        self._password = password if password is not None else os.environ.get(PASSWORD_ENV)
        self.retry_delay_s = retry_delay_s
        self.attempts = 0  # connection attempts made by the last connect (tests read it)

    @property
    def address(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"

    def __repr__(self) -> str:  # never shows the password
        return f"SSHTransport({self.target!r}, {self.address})"

    # -- connecting ------------------------------------------------------------------------------------------------

    def _options(self, known_hosts: Any) -> dict[str, Any]:
        opts: dict[str, Any] = {"host": self.host, "port": self.port, "username": self.user,
                                "known_hosts": known_hosts, "connect_timeout": self.spec.connect_timeout_s,
                                "login_timeout": self.spec.connect_timeout_s}
        if self.spec.identity_file:
            key = Path(self.spec.identity_file).expanduser()
            if not key.is_file():
                raise EdgekitError(f"SSH key file {key} does not exist",
                                   "point --identity / [transport] identity_file at your private key")
            opts["client_keys"] = [str(key)]
            opts["agent_path"] = None
        if self._password is not None:
            opts["password"] = self._password
        return opts

    def _has_entry(self) -> bool:
        """Whether known_hosts holds any key for this host (hashed entries included)."""
        import asyncssh

        if not self.known_hosts.is_file():
            return False
        try:
            kh = asyncssh.read_known_hosts(str(self.known_hosts))
        except (OSError, ValueError, asyncssh.Error):
            return False
        keys, cas, *_ = kh.match(self.host, self.host, self.port)
        return bool(keys or cas)

    def _record_key(self, key: Any) -> None:
        self.known_hosts.parent.mkdir(parents=True, exist_ok=True)
        pattern = self.host if self.port == 22 else f"[{self.host}]:{self.port}"
        line = f"{pattern} {key.export_public_key('openssh').decode().strip()}\n"
        with open(self.known_hosts, "a") as fh:
            fh.write(line)

    async def _offered_fingerprint(self) -> str | None:
        """The SHA256 fingerprint of the host key the device offers now (no login is attempted), or None."""
        import asyncssh

        try:
            key = await asyncio.wait_for(asyncssh.get_server_host_key(self.host, self.port),
                                         timeout=self.spec.connect_timeout_s)
        except (TimeoutError, OSError, asyncssh.Error):
            return None
        return key.get_fingerprint("sha256") if key is not None else None

    async def _offered_key_is_not_recorded(self) -> bool:
        """True when the device answers with a host key that known_hosts does not hold for it (no login)."""
        import asyncssh

        try:
            offered = await asyncio.wait_for(asyncssh.get_server_host_key(self.host, self.port),
                                             timeout=self.spec.connect_timeout_s)
            keys, *_ = asyncssh.read_known_hosts(str(self.known_hosts)).match(self.host, self.host, self.port)
        except (TimeoutError, OSError, ValueError, asyncssh.Error):
            return False
        if offered is None:
            return False
        return all(k.export_public_key() != offered.export_public_key() for k in keys)

    async def _changed_key_error(self) -> EdgekitError:
        """The refusal of a host key that differs from the one recorded: never advise fetching the new key over the
        network (that would trust whoever answers); say how to check it on the device itself."""
        pattern = self.host if self.port == 22 else f"[{self.host}]:{self.port}"
        offered = await self._offered_fingerprint()
        shown = f" (it offered {offered})" if offered else ""
        return EdgekitError(
            f"the SSH host key of {self.host}:{self.port} (target {self.target}){shown} does NOT match the key "
            f"recorded for {pattern} in {self.known_hosts}: this may be an attack (someone intercepting the "
            "connection), or the device was reinstalled; edgekit did not log in",
            "verify the key out of band: on the device's own console run `ssh-keygen -lf "
            "/etc/ssh/ssh_host_ed25519_key.pub` (or the other /etc/ssh/ssh_host_*_key.pub files) and compare the "
            f"fingerprint with the one offered; only if they match, remove the stale line with "
            f"`ssh-keygen -R {shlex.quote(pattern)} -f {shlex.quote(str(self.known_hosts))}` and connect again with "
            "--trust-on-first-use")

    async def _connect_once(self) -> Any:
        import asyncssh

        try:
            trusted: Any = str(self.known_hosts) if self.known_hosts.is_file() else ([], [], [])
            return await asyncssh.connect(**self._options(trusted))
        except asyncssh.HostKeyNotVerifiable as exc:
            if self._has_entry():  # a changed key: refused with or without --trust-on-first-use
                raise await self._changed_key_error() from exc
            if not self.trust_on_first_use:
                raise EdgekitError(
                    f"the SSH host key of {self.host}:{self.port} (target {self.target}) is not in {self.known_hosts}",
                    f"check the key and add it (ssh-keyscan -p {self.port} {self.host} >> {self.known_hosts}), or "
                    "pass --trust-on-first-use to record it now") from exc
            conn = await asyncssh.connect(**self._options(None))
            self._record_key(conn.get_server_host_key())
            return conn
        except asyncssh.KeyExchangeFailed as exc:
            # known_hosts limits the host key types asked for to the recorded ones: a device that offers none of
            # them has changed its key as surely as one offering another key of the same type
            if "host key" in str(exc).lower() and self._has_entry():
                raise await self._changed_key_error() from exc
            raise
        except (asyncssh.ConnectionLost, asyncssh.DisconnectError) as exc:
            # A device that refuses the key exchange may drop the connection before the client reads why (seen on
            # a loaded host): ask which key it offers now and compare it with the recorded ones.
            if self._has_entry() and await self._offered_key_is_not_recorded():
                raise await self._changed_key_error() from exc
            raise

    async def connect(self) -> Any:
        """An open asyncssh connection, after up to `retries` attempts for network failures."""
        import asyncssh

        tries = max(1, int(self.spec.retries))
        last: BaseException | None = None
        self.attempts = 0
        for attempt in range(tries):
            self.attempts += 1
            try:
                return await self._connect_once()
            except asyncssh.PermissionDenied as exc:
                raise EdgekitError(
                    f"SSH authentication was refused for {self.user}@{self.host}:{self.port} (target {self.target})",
                    f"install your public key on the device (ssh-copy-id -p {self.port} {self.user}@{self.host}), "
                    f"pass --user, point [transport] identity_file at the right key, or set ${PASSWORD_ENV}") from exc
            except EdgekitError:
                raise
            except (TimeoutError, OSError, asyncssh.ConnectionLost, asyncssh.DisconnectError) as exc:
                last = exc
                if attempt + 1 < tries:
                    await asyncio.sleep(self.retry_delay_s * (2 ** attempt))
        why = _why(last)
        raise DeviceUnreachableError(
            f"cannot reach target {self.target} at {self.host}:{self.port} over SSH ({why}) after {tries} "
            f"attempt{'s' if tries > 1 else ''}",
            "check that the device is on, on the network and runs sshd on that port (--port), or leave out --host "
            "to get predicted figures")

    # -- remote files ------------------------------------------------------------------------------------------------

    def _remote(self, *parts: str) -> str:
        return posixpath.join(self.spec.workdir, *parts)

    async def _put(self, sftp: Any, local: Path, remote: str) -> None:
        """Copy a file (or a directory tree, e.g. an .mlpackage) unless the same size is already there."""
        import asyncssh

        try:
            attrs = await sftp.stat(remote)
            if local.is_file() and attrs.size == local.stat().st_size:
                return
            if local.is_dir():
                return
        except asyncssh.SFTPError:
            pass
        await sftp.makedirs(posixpath.dirname(remote), exist_ok=True)
        await sftp.put(str(local), remote, recurse=local.is_dir())

    async def _upload(self, conn: Any, job: Any) -> tuple[str, str]:
        sha = job.sha256 or hashlib.sha256(str(Path(job.path).resolve()).encode()).hexdigest()
        agent_remote = self._remote(_agent_remote_name())
        model_remote = self._remote("artifacts", sha[:16], Path(job.path).name)
        async with conn.start_sftp_client() as sftp:
            await sftp.makedirs(self.spec.workdir, exist_ok=True)
            await self._put(sftp, AGENT_PATH, agent_remote)
            await self._put(sftp, Path(job.path), model_remote)
        return agent_remote, model_remote

    # -- calls -----------------------------------------------------------------------------------------------------

    def _where(self) -> str:
        return f"target {self.target} ({self.host}:{self.port})"

    async def _exec(self, conn: Any, argv: list[str], timeout: float, what: str, phase: str = "") -> dict[str, Any]:
        import asyncssh

        command = shlex.join(argv)
        try:
            proc = await conn.run(command, check=False, timeout=timeout)
        except asyncssh.TimeoutError as exc:
            raise AgentFailedError(
                f"{self._where()}: {what} did not finish within {timeout:g} s (timed out)",
                "raise the timeout (--timeout or [transport] timeout_s) or lower --runs/--min-time") from exc
        stdout = proc.stdout if isinstance(proc.stdout, str) else (proc.stdout or b"").decode(errors="replace")
        stderr = proc.stderr if isinstance(proc.stderr, str) else (proc.stderr or b"").decode(errors="replace")
        if proc.exit_status is None and not proc.exit_signal:  # the channel closed without an exit status
            raise DeviceDisconnectedError(
                f"the SSH connection to {self._where()} dropped during {what} (no exit status came back)",
                "check the device's power and network, then re-run; results completed before the drop are kept "
                "in the store")
        if proc.exit_status == 127 and not stdout:
            raise AgentFailedError(f"{self._where()}: {argv[0]!r} was not found on the device",
                                   "install Python 3 there or set [transport] python / --python to its path")
        return parse_agent_output(stdout, self._where(), proc.exit_status, proc.exit_signal[0]
                                  if proc.exit_signal else None, stderr, phase)

    def _run(self, coro: Any) -> Any:
        import asyncssh

        try:
            return asyncio.run(coro)
        except (asyncssh.ConnectionLost, asyncssh.DisconnectError, ConnectionResetError, BrokenPipeError) as exc:
            raise DeviceDisconnectedError(
                f"the SSH connection to {self._where()} dropped ({_why(exc)})",
                "check the device's power and network, then re-run; results completed before the drop are kept "
                "in the store") from exc

    def check(self) -> CheckReport:
        async def go() -> CheckReport:
            conn = await self.connect()
            async with conn:
                async with conn.start_sftp_client() as sftp:
                    await sftp.makedirs(self.spec.workdir, exist_ok=True)
                    await self._put(sftp, AGENT_PATH, self._remote(_agent_remote_name()))
                event = await self._exec(conn, [self.spec.python, self._remote(_agent_remote_name()), "check"],
                                         min(self.spec.timeout_s, 120.0), "the agent check")
            return CheckReport(target=self.target, transport=self.kind, address=self.address,
                               host=event.get("host", {}), runtimes=event.get("runtimes", {}))

        return self._run(go())

    def run_bench(self, job: Any, config: Any, return_outputs: bool = False) -> dict[str, Any]:
        async def go() -> dict[str, Any]:
            conn = await self.connect()
            async with conn:
                t0 = time.perf_counter()
                agent, model = await self._upload(conn, job)
                upload_s = time.perf_counter() - t0
                argv = [self.spec.python, agent, *agent_args(job, config, model, return_outputs,
                                                             self._compute_units(job))]
                result = await self._exec(conn, argv, self.spec.timeout_s, f"benchmarking {job.describe()}")
            result["provenance"] = self.provenance
            result["transport"] = {"kind": self.kind, "address": self.address, "remote_artifact": model,
                                   "upload_s": upload_s}
            return result

        return self._run(go())

    def _compute_units(self, job: Any) -> str | None:
        return None


def _why(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return "connection timed out"
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:160]
