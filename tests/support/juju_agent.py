"""The Juju side of one unit of a packed charm: its agent, as a test drives it.

:class:`UnitAgent` stands in for Juju's unit agent on a :class:`support.machine.Machine`:

- it deploys and refreshes ``.charm`` files into the unit's charm directory as Juju's manifest
  deployer does (the new archive expanded over the old one; files only the old charm had are
  removed; everything else, such as ops' ``.unit-state.db`` and the ``venv/bin/python`` link
  ``dispatch`` makes, is left in place; a ``revision`` file is written);
- it runs hooks and actions through the charm's own ``dispatch``, in the charm directory, with
  the environment Juju gives a hook on a machine (``JUJU_DISPATCH_PATH``, ``JUJU_*``,
  ``CHARM_DIR``, ``LANG``, ``TERM``, ``PATH`` with the tools directory first) and nothing else;
- it holds what the controller would know about the unit (config, leadership, storage,
  resources, relations, bindings, status, ports, actions) in a JSON file that the hook tools of
  :mod:`support.hooktools` read and update, and commits a hook's port and relation changes
  only when the hook succeeds.

The sequences of hooks are Juju's: deploying runs storage-attached (the storage is there at
deploy), install, relation-created for the peer relation, leader-elected, config-changed and
start; ``juju refresh`` runs upgrade-charm then config-changed; ``juju attach-resource`` runs
upgrade-charm; ``juju config`` runs config-changed.

In Juju's source (github.com/juju/juju): the deployer is
``internal/worker/uniter/charm/manifest_deployer.go``; the hook environment is ``HookVars`` in
``internal/worker/uniter/runner/context/context.go`` and ``env.go``, with ``JUJU_DISPATCH_PATH``
added in ``internal/worker/uniter/runner/runner.go``; storage-attached runs before install on
machine models per ``internal/worker/uniter/storage/resolver.go``.
"""

from __future__ import annotations

import itertools
import json
import shutil
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from support import hooktools
from support.machine import MACHINE_PATH, Machine

HOOK_TIMEOUT = 300


@dataclass(frozen=True)
class ToolCall:
    """One hook tool call: the tool, its arguments, its exit status and its hook context."""

    tool: str
    args: tuple[str, ...]
    status: int
    context: str


@dataclass
class HookRun:
    """What one dispatch did: its exit status, its output and the hook tools it called."""

    name: str
    returncode: int
    stdout: str
    stderr: str
    calls: list[ToolCall] = field(default_factory=list)

    def args_of(self, tool: str) -> list[tuple[str, ...]]:
        """The arguments of every call to ``tool``, in order."""
        return [c.args for c in self.calls if c.tool == tool]

    def check(self) -> HookRun:
        """Fail the test unless the dispatch succeeded, with its output and its logged errors.

        ops sends an uncaught exception's traceback to ``juju-log``, not to stderr.
        """
        errors = [c.args[-1] for c in self.calls if c.tool == "juju-log" and "ERROR" in c.args]
        assert self.returncode == 0, (
            f"{self.name} exited {self.returncode}\nstdout:\n{self.stdout}\nstderr:\n"
            f"{self.stderr}\nlogged errors:\n" + "\n".join(errors)
        )
        return self


@dataclass
class ActionRun(HookRun):
    """A dispatched action: also how it ended, its results and its log, as ``juju run`` shows."""

    status: str = ""
    results: dict[str, str] = field(default_factory=dict)
    message: str = ""
    log: list[str] = field(default_factory=list)


class UnitAgent:
    """Juju's unit agent for ``<app>/<number>`` on ``machine`` (see the module docstring)."""

    def __init__(
        self,
        machine: Machine,
        *,
        app: str = "upgrader",
        number: int = 0,
        model: str = "controller",
        juju_version: str = "3.5.6",
    ) -> None:
        """Lay out the agent's directories on the machine (Juju's /var/lib/juju layout)."""
        self.machine = machine
        self.app = app
        self.unit = f"{app}/{number}"
        self.model = model
        self.juju_version = juju_version
        tag = f"unit-{app}-{number}"
        juju = machine.root / "var/lib/juju"
        self.agent_dir = juju / "agents" / tag
        self.charm_dir = self.agent_dir / "charm"
        self.state_dir = self.agent_dir / "state"
        self.tools_dir = juju / "tools" / tag
        self.storage_dir = juju / "storage"
        for directory in (self.state_dir, self.storage_dir, self.agent_dir / "resources"):
            _make_dirs(machine.root, directory)
        machine.juju_tools(self.tools_dir)
        self._revision = itertools.count()
        self._context_ids = itertools.count(1)
        self._action_ids = itertools.count(1)

    # --- what the controller knows -----------------------------------------------------------

    @property
    def state(self) -> dict[str, Any]:
        """The unit's model as the hook tools see it."""
        return json.loads((self.agent_dir / hooktools.STATE_FILE).read_text())

    def _update(self, **changes: Any) -> None:
        with hooktools.locked_state(self.agent_dir) as state:
            state.update(changes)

    @property
    def status(self) -> tuple[str, str]:
        """The unit's workload status and message."""
        unit = self.state["status"]["unit"]
        return unit["status"], unit["message"]

    @property
    def opened_ports(self) -> list[str]:
        """The ports Juju has opened for the unit (``8080/tcp``)."""
        return list(self.state["opened-ports"])

    def calls(self) -> list[ToolCall]:
        """Every hook tool call so far."""
        path = self.agent_dir / hooktools.CALLS_FILE
        if not path.exists():
            return []
        return [
            ToolCall(c["tool"], tuple(c["args"]), c["status"], c["context"])
            for c in map(json.loads, path.read_text().splitlines())
        ]

    # --- operator commands -------------------------------------------------------------------

    def deploy(
        self,
        charm: Path,
        *,
        config: dict[str, Any],
        resources: dict[str, Path] | None = None,
        storage: str = "binaries",
    ) -> list[HookRun]:
        """``juju deploy ./charm --config ... --storage binaries=... [--resource ...]``."""
        self._expand(charm)
        meta = self._metadata()
        storage_id = f"{storage}/0"
        location = self.storage_dir / storage / "0"
        _make_dirs(self.machine.root, location)
        state: dict[str, Any] = {
            "unit": self.unit,
            "app": self.app,
            "leader": True,
            "user-config": dict(config),
            "config": {},
            "status": {
                "unit": {"status": "waiting", "message": "agent initialising"},
                "app": {"status": "unknown", "message": ""},
            },
            "status-history": [],
            "opened-ports": [],
            "storage": {storage_id: {"kind": "filesystem", "location": str(location)}},
            "resources": {},
            "relations": {},
            "bindings": {},
            "app-version": "",
            "actions": {},
            "context": None,
        }
        (self.agent_dir / hooktools.STATE_FILE).write_text(json.dumps(state))
        self._apply_charm(meta)
        for name, path in (resources or {}).items():
            self._store_resource(name, path)
        peers = next(iter(meta.get("peers", {})), None)
        if peers:
            self._add_relation(peers, self.app)
        runs = [self.hook(f"{storage}-storage-attached", storage=storage_id)]
        runs.append(self.hook("install"))
        if peers:
            runs.append(self.hook(f"{peers}-relation-created", relation=f"{peers}:0"))
        runs += [self.hook("leader-elected"), self.hook("config-changed"), self.hook("start")]
        return runs

    def refresh(self, charm: Path, *, resources: dict[str, Path] | None = None) -> list[HookRun]:
        """``juju refresh <app> --path ./charm [--resource ...]``: upgrade-charm, config-changed.

        Juju deploys the new charm over the old one first (see :meth:`_expand`).
        """
        self._expand(charm)
        self._apply_charm(self._metadata())
        for name, path in (resources or {}).items():
            self._store_resource(name, path)
        return [self.hook("upgrade-charm"), self.hook("config-changed")]

    def configure(self, **options: Any) -> HookRun:
        """``juju config <app> key=value ...``: config-changed."""
        state = self.state
        state["user-config"].update({k.replace("_", "-"): v for k, v in options.items()})
        self._update(**{"user-config": state["user-config"]})
        self._apply_charm(self._metadata())
        return self.hook("config-changed")

    def attach_resource(self, name: str, path: Path) -> HookRun:
        """``juju attach-resource <app> name=path``: upgrade-charm."""
        self._store_resource(name, path)
        return self.hook("upgrade-charm")

    # --- running the charm -------------------------------------------------------------------

    def hook(
        self,
        name: str,
        *,
        relation: str | None = None,
        remote_unit: str = "",
        storage: str | None = None,
    ) -> HookRun:
        """Dispatch hook ``name`` with Juju's environment; commit its changes if it succeeds."""
        context = self._context(name, relation=relation, remote_unit=remote_unit, storage=storage)
        env = self._environment(context, dispatch=f"hooks/{name}")
        return self._dispatch(name, context, env)

    def run_action(self, name: str, **params: Any) -> ActionRun:
        """``juju run <unit> name key=value ...``; its params get the schema's defaults."""
        action_id = str(next(self._action_ids))
        schema = yaml.safe_load((self.charm_dir / "actions.yaml").read_text())[name]
        values = {
            key: spec["default"]
            for key, spec in schema.get("params", {}).items()
            if "default" in spec
        }
        values.update({k.replace("_", "-"): v for k, v in params.items()})
        context = self._context(name)
        context["action"] = {
            "id": action_id,
            "name": name,
            "params": values,
            "results": {},
            "failed": False,
            "message": "",
            "log": [],
        }
        env = self._environment(context, dispatch=f"actions/{name}")
        env.update(
            JUJU_ACTION_NAME=name,
            JUJU_ACTION_UUID=action_id,
            JUJU_ACTION_TAG=f"action-{action_id}",
            JUJU_HOOK_NAME="",
        )
        run = self._dispatch(name, context, env)
        action = self.state["actions"][action_id]
        return ActionRun(
            run.name,
            run.returncode,
            run.stdout,
            run.stderr,
            run.calls,
            status=action["status"],
            results=action["results"],
            message=action["message"],
            log=action["log"],
        )

    def _context(
        self,
        name: str,
        *,
        relation: str | None = None,
        remote_unit: str = "",
        storage: str | None = None,
    ) -> dict[str, Any]:
        return {
            "id": f"{self.unit}-{name}-{next(self._context_ids)}",
            "hook": name,
            "relation": relation,
            "remote-unit": remote_unit,
            "storage": storage,
            "action": None,
            "pending-ports": [],
            "pending-relation": {},
        }

    def _environment(self, context: dict[str, Any], *, dispatch: str) -> dict[str, str]:
        """The variables Juju sets for a hook on a machine, and no others."""
        env = {
            "CHARM_DIR": str(self.charm_dir),
            "JUJU_CHARM_DIR": str(self.charm_dir),
            "JUJU_CONTEXT_ID": context["id"],
            "JUJU_HOOK_NAME": context["hook"],
            "JUJU_AGENT_SOCKET_ADDRESS": f"@{self.agent_dir / hooktools.SOCKET_NAME}",
            "JUJU_AGENT_SOCKET_NETWORK": "unix",
            "JUJU_UNIT_NAME": self.unit,
            "JUJU_MODEL_UUID": "6a0c8bd4-3ca8-4f5f-8b55-7a6cfe1b5e3a",
            "JUJU_MODEL_NAME": self.model,
            # There is no controller API here; the hook tools answer for it.
            "JUJU_API_ADDRESSES": "",
            "JUJU_MACHINE_ID": "0",
            "JUJU_PRINCIPAL_UNIT": "",
            "JUJU_AVAILABILITY_ZONE": "",
            "JUJU_VERSION": self.juju_version,
            "CLOUD_API_VERSION": "",
            "JUJU_CHARM_HTTP_PROXY": "",
            "JUJU_CHARM_HTTPS_PROXY": "",
            "JUJU_CHARM_FTP_PROXY": "",
            "JUJU_CHARM_NO_PROXY": "",
            "APT_LISTCHANGES_FRONTEND": "none",
            "DEBIAN_FRONTEND": "noninteractive",
            "LANG": "C.UTF-8",
            "TERM": "tmux-256color",
            "PATH": f"{self.tools_dir}:{MACHINE_PATH}",
            "JUJU_DISPATCH_PATH": dispatch,
        }
        if context["relation"]:
            relation = self.state["relations"][context["relation"]]
            env.update(
                JUJU_RELATION=relation["endpoint"],
                JUJU_RELATION_ID=context["relation"],
                JUJU_REMOTE_UNIT=context["remote-unit"],
                JUJU_REMOTE_APP=relation["app"],
            )
        if context["storage"]:
            info = self.state["storage"][context["storage"]]
            env.update(
                JUJU_STORAGE_ID=context["storage"],
                JUJU_STORAGE_LOCATION=info["location"],
                JUJU_STORAGE_KIND=info["kind"],
            )
        return env

    def _dispatch(self, name: str, context: dict[str, Any], env: dict[str, str]) -> HookRun:
        self._update(context=context)
        result = self.machine.run(
            [str(self.charm_dir / "dispatch")], env=env, cwd=self.charm_dir, timeout=HOOK_TIMEOUT
        )
        with hooktools.locked_state(self.agent_dir) as state:
            self._flush(state, result.returncode == 0)
        calls = [c for c in self.calls() if c.context == context["id"]]
        return HookRun(name, result.returncode, result.stdout, result.stderr, calls)

    @staticmethod
    def _flush(state: dict[str, Any], succeeded: bool) -> None:
        """End the hook context: commit its ports and relation data if it succeeded."""
        context = state["context"]
        state["context"] = None
        action = context["action"]
        if action is not None:
            failed = action["failed"] or not succeeded
            message = action["message"] or ("" if succeeded else "exit status 1")
            state["actions"][action["id"]] = {
                "name": action["name"],
                "status": "failed" if failed else "completed",
                "results": action["results"],
                "message": message,
                "log": action["log"],
            }
        if not succeeded:
            return
        ports = state["opened-ports"]
        for verb, port in context["pending-ports"]:
            if verb == "open" and port not in ports:
                ports.append(port)
            elif verb == "close" and port in ports:
                ports.remove(port)
        for relation_id, owners in context["pending-relation"].items():
            data = state["relations"][relation_id]["data"]
            for owner, settings in owners.items():
                bag = data.setdefault(owner, {})
                bag.update(settings)
                for key in [k for k, v in bag.items() if v == ""]:
                    del bag[key]

    # --- the charm directory -----------------------------------------------------------------

    def _expand(self, charm: Path) -> None:
        """Deploy ``charm`` into the charm directory as Juju's manifest deployer does."""
        revision = next(self._revision)
        url = f"local:{self.app}-{revision}"
        with zipfile.ZipFile(charm) as archive:
            manifest = {name.rstrip("/") for name in archive.namelist()} | {"revision"}
            manifests = self.state_dir / "manifests"
            manifests.mkdir(exist_ok=True)
            current = self.charm_dir / ".juju-charm"
            if current.exists():
                old = set(json.loads((manifests / _quote(current.read_text())).read_text()))
                for path in sorted(old - manifest, reverse=True):
                    target = self.charm_dir / path
                    if target.is_dir() and not target.is_symlink():
                        shutil.rmtree(target)
                    else:
                        target.unlink(missing_ok=True)
            (manifests / _quote(url)).write_text(json.dumps(sorted(manifest)))
            self.charm_dir.mkdir(parents=True, exist_ok=True)
            (self.charm_dir / ".juju-deploying").write_text(url)
            for info in archive.infolist():
                _extract(archive, info, self.charm_dir)
        (self.charm_dir / "revision").write_text(str(revision))
        (self.charm_dir / ".juju-deploying").replace(current)

    def _metadata(self) -> dict[str, Any]:
        return yaml.safe_load((self.charm_dir / "metadata.yaml").read_text())

    def _apply_charm(self, meta: dict[str, Any]) -> None:
        """What the controller derives from the charm: effective config and the bindings."""
        options = yaml.safe_load((self.charm_dir / "config.yaml").read_text())["options"]
        state = self.state
        config = {name: spec.get("default") for name, spec in options.items()}
        config.update({k: v for k, v in state["user-config"].items() if k in options})
        endpoints = ["juju-info"]
        for kind in ("provides", "requires", "peers", "extra-bindings"):
            endpoints += list(meta.get(kind) or {})
        self._update(config=config, bindings=dict.fromkeys(endpoints, "127.0.0.1"))

    def _add_relation(self, endpoint: str, remote_app: str) -> None:
        relation_id = f"{endpoint}:{len(self.state['relations'])}"
        unit_data = {
            "egress-subnets": "127.0.0.1/32",
            "ingress-address": "127.0.0.1",
            "private-address": "127.0.0.1",
        }
        relations = self.state["relations"]
        relations[relation_id] = {
            "id": relation_id,
            "endpoint": endpoint,
            "app": remote_app,
            "units": [],
            "data": {self.unit: unit_data, self.app: {}},
        }
        self._update(relations=relations)

    def _store_resource(self, name: str, path: Path) -> None:
        """Where the unit agent keeps a resource it downloaded (``resources/<name>/<file>``)."""
        meta = self._metadata()["resources"][name]
        target = self.agent_dir / "resources" / name / meta.get("filename", name)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        resources = self.state["resources"]
        resources[name] = str(target)
        self._update(resources=resources)


def _make_dirs(root: Path, path: Path) -> None:
    """Make ``path`` and its parents below ``root`` world-readable whatever the umask, as
    /var/lib/juju is: nginx's workers (www-data) must reach the storage inside it."""
    path.mkdir(parents=True, exist_ok=True)
    for directory in [path, *path.parents]:
        if directory == root or root not in directory.parents:
            break
        directory.chmod(0o755)


def _quote(url: str) -> str:
    """A charm URL as a file name (Juju's charm.Quote keeps letters, digits and ``.-``)."""
    return "".join(c if c.isalnum() or c in ".-" else "_" for c in url)


def _extract(archive: zipfile.ZipFile, info: zipfile.ZipInfo, root: Path) -> None:
    """Extract one member with the mode the archive records (dispatch stays executable)."""
    target = root / info.filename
    mode = (info.external_attr >> 16) & 0o7777
    if info.is_dir():
        target.mkdir(parents=True, exist_ok=True)
        return
    if stat.S_ISLNK(info.external_attr >> 16):
        raise AssertionError(f"the charm holds a symbolic link: {info.filename}")
    target.parent.mkdir(parents=True, exist_ok=True)
    with archive.open(info) as source, open(target, "wb") as dest:
        shutil.copyfileobj(source, dest)
    target.chmod(mode or 0o644)
