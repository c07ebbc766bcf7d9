"""Juju's hook tools for a packed charm under test: one program, run under each tool's name.

On a unit, Juju puts its hook tools (``config-get``, ``status-set``, ...) in a tools directory
as links to one binary that acts on the name it is run as, and answers from the unit agent. This
program does the same for :mod:`support.juju_agent`: the agent it talks to is a JSON file, the
unit's model as Juju would hold it, found from ``JUJU_AGENT_SOCKET_ADDRESS`` as the real tools
find their agent. Every call is appended to ``hook-tool-calls.jsonl`` beside it.

Each tool takes the arguments ops passes (``--format=json`` and friends), writes what Juju
writes, and fails as Juju does: ``ERROR ...`` on stderr with exit status 1, or 2 for bad usage.
Port and relation changes wait in the hook context until the hook succeeds, as Juju's do.

It uses the standard library only: it runs on the machine's python3, outside the charm's venv.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

STATE_FILE = "juju-state.json"
LOCK_FILE = "juju-state.lock"
CALLS_FILE = "hook-tool-calls.jsonl"
SOCKET_NAME = "agent.socket"

STATUSES = ("maintenance", "blocked", "waiting", "active")
RESULT_KEY = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")
"""What each dotted part of an ``action-set`` key must look like (Juju refuses others)."""


class ToolError(Exception):
    """What the tool prints after ``ERROR`` and the exit status (1, or 2 for usage)."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def agent_dir_from_env(env: dict[str, str] | os._Environ[str]) -> Path:
    """The unit agent's directory, from the socket address hooks get (``@DIR/agent.socket``)."""
    address = env.get("JUJU_AGENT_SOCKET_ADDRESS", "")
    if not address.endswith(SOCKET_NAME):
        raise ToolError(f"no unit agent at JUJU_AGENT_SOCKET_ADDRESS={address!r}")
    return Path(address.lstrip("@")).parent


@contextlib.contextmanager
def locked_state(agent_dir: Path) -> Iterator[dict[str, Any]]:
    """The agent's state, read and written back under an exclusive lock."""
    with open(agent_dir / LOCK_FILE, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = agent_dir / STATE_FILE
        state = json.loads(path.read_text())
        yield state
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
        os.replace(tmp, path)


class Args:
    """Flags as Juju's tools read them: ``--f=v``, ``--f v``, ``-f v``; ``--`` ends them."""

    def __init__(self, argv: list[str], *, values: set[str], switches: set[str]) -> None:
        """Split ``argv`` into flags (named in ``values`` or ``switches``) and positionals."""
        self.flags: dict[str, str] = {}
        self.positional: list[str] = []
        i = 0
        while i < len(argv):
            arg = argv[i]
            if arg == "--":
                self.positional += argv[i + 1 :]
                break
            if arg.startswith("-") and arg != "-":
                name, eq, value = arg.lstrip("-").partition("=")
                if name in switches:
                    self.flags[name] = value if eq else "true"
                elif name in values:
                    if not eq:
                        i += 1
                        if i == len(argv):
                            raise ToolError(f"flag needs an argument: {arg}", 2)
                        value = argv[i]
                    self.flags[name] = value
                else:
                    raise ToolError(f"flag provided but not defined: {arg}", 2)
            else:
                self.positional.append(arg)
            i += 1

    def switch(self, name: str) -> bool:
        """Whether a boolean flag was given (``--app``, ``--application=true``)."""
        return self.flags.get(name, "false").lower() in ("true", "1", "")

    def at_most(self, count: int) -> list[str]:
        """The positionals, refusing more than ``count`` as Juju does."""
        if len(self.positional) > count:
            raise ToolError(f"unrecognized args: {json.dumps(self.positional[count:])}", 2)
        return self.positional


def _relation(state: dict[str, Any], context: dict[str, Any], ref: str | None) -> dict[str, Any]:
    """The relation ``-r`` names (``name:id`` or ``id``), or the hook's own relation."""
    key = ref if ref is not None else context.get("relation")
    if key is None:
        raise ToolError("no relation id specified", 2)
    rel_id = key.rpartition(":")[2]
    for name, relation in state["relations"].items():
        if name.rpartition(":")[2] == rel_id:
            return relation
    raise ToolError(f'invalid value "{key}" for option -r: relation not found', 2)


def _out(value: Any, args: Args) -> str:
    fmt = args.flags.get("format", "smart")
    if fmt == "json":
        return json.dumps(value)
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, str):
        return value
    return json.dumps(value)


def config_get(state: dict, context: dict, argv: list[str]) -> str:
    args = Args(argv, values={"format", "o", "output"}, switches={"all", "a"})
    keys = args.at_most(1)
    config = state["config"]
    if keys:
        return _out(config.get(keys[0]), args)
    return _out({k: v for k, v in config.items() if v is not None}, args)


def is_leader(state: dict, context: dict, argv: list[str]) -> str:
    args = Args(argv, values={"format", "o", "output"}, switches=set())
    args.at_most(0)
    return _out(bool(state["leader"]), args)


def status_get(state: dict, context: dict, argv: list[str]) -> str:
    args = Args(argv, values={"format", "o", "output"}, switches={"include-data", "application"})
    args.at_most(0)
    unit = state["status"]["unit"]
    if args.switch("application"):
        if not state["leader"]:
            raise ToolError("finding application status: this unit is not the leader")
        app = state["status"]["app"]
        return _out(
            {
                "application-status": {
                    "message": app["message"],
                    "status": app["status"],
                    "status-data": {},
                    "units": {
                        state["unit"]: {
                            "message": unit["message"],
                            "status": unit["status"],
                            "status-data": {},
                        }
                    },
                }
            },
            args,
        )
    return _out({"message": unit["message"], "status": unit["status"], "status-data": {}}, args)


def status_set(state: dict, context: dict, argv: list[str]) -> str:
    args = Args(argv, values=set(), switches={"application"})
    positional = args.at_most(2)
    if not positional or positional[0] not in STATUSES:
        raise ToolError(f"invalid status {positional[:1]!r}, expected one of {STATUSES}", 2)
    if args.switch("application") and not state["leader"]:
        raise ToolError("setting application status: this unit is not the leader")
    target = "app" if args.switch("application") else "unit"
    message = positional[1] if len(positional) > 1 else ""
    state["status"][target] = {"status": positional[0], "message": message}
    state["status-history"].append([target, positional[0], message])
    return ""


def juju_log(state: dict, context: dict, argv: list[str]) -> str:
    args = Args(argv, values={"log-level", "l"}, switches={"debug"})
    if not args.positional:
        raise ToolError("no message specified", 2)
    return ""


def storage_list(state: dict, context: dict, argv: list[str]) -> str:
    args = Args(argv, values={"format", "o", "output"}, switches=set())
    names = args.at_most(1)
    ids = [i for i in state["storage"] if not names or i.partition("/")[0] == names[0]]
    return _out(ids, args)


def storage_get(state: dict, context: dict, argv: list[str]) -> str:
    args = Args(argv, values={"format", "o", "output", "s"}, switches=set())
    keys = args.at_most(1)
    storage_id = args.flags.get("s") or context.get("storage")
    if not storage_id:
        raise ToolError("no storage instance specified", 2)
    if storage_id not in state["storage"]:
        raise ToolError(f'invalid value "{storage_id}" for option -s: storage not found', 2)
    info = state["storage"][storage_id]
    if keys:
        if keys[0] not in info:
            raise ToolError(f'invalid attribute "{keys[0]}"')
        return _out(info[keys[0]], args)
    return _out(info, args)


def resource_get(state: dict, context: dict, argv: list[str]) -> str:
    args = Args(argv, values=set(), switches=set())
    names = args.at_most(1)
    if not names:
        raise ToolError("missing required resource name", 2)
    path = state["resources"].get(names[0])
    if path is None:
        raise ToolError(f"could not download resource: {names[0]} not found")
    return path + "\n"


def network_get(state: dict, context: dict, argv: list[str]) -> str:
    args = Args(
        argv,
        values={"format", "o", "output", "r", "relation"},
        switches={"primary-address", "bind-address", "ingress-address", "egress-subnets"},
    )
    names = args.at_most(1)
    if not names:
        raise ToolError("no arguments specified", 2)
    if "r" in args.flags:
        _relation(state, context, args.flags["r"])
    if names[0] not in state["bindings"]:
        raise ToolError(f'no network config found for binding "{names[0]}"')
    address = state["bindings"][names[0]]
    return _out(
        {
            "bind-addresses": [
                {
                    "mac-address": "",
                    "interface-name": "lo",
                    "addresses": [
                        {
                            "hostname": "",
                            "address": address,
                            "value": address,
                            "cidr": f"{address}/32",
                        }
                    ],
                    "macaddress": "",
                    "interfacename": "lo",
                }
            ],
            "egress-subnets": [f"{address}/32"],
            "ingress-addresses": [address],
        },
        args,
    )


def relation_ids(state: dict, context: dict, argv: list[str]) -> str:
    args = Args(argv, values={"format", "o", "output"}, switches=set())
    names = args.at_most(1)
    ids = [i for i, r in state["relations"].items() if not names or r["endpoint"] == names[0]]
    return _out(ids, args)


def relation_list(state: dict, context: dict, argv: list[str]) -> str:
    args = Args(argv, values={"format", "o", "output", "r"}, switches={"app"})
    args.at_most(0)
    relation = _relation(state, context, args.flags.get("r"))
    if args.switch("app"):
        return _out(relation["app"], args)
    return _out(relation["units"], args)


def relation_get(state: dict, context: dict, argv: list[str]) -> str:
    args = Args(argv, values={"format", "o", "output", "r"}, switches={"app"})
    positional = args.at_most(2)
    relation = _relation(state, context, args.flags.get("r"))
    key = positional[0] if positional else "-"
    owner = positional[1] if len(positional) > 1 else context.get("remote-unit", "")
    if args.switch("app"):
        owner = owner.partition("/")[0] if owner else state["app"]
    if not owner:
        raise ToolError("no unit or application specified", 2)
    data = dict(relation["data"].get(owner, {}))
    pending = context["pending-relation"].get(relation["id"], {}).get(owner, {})
    data.update(pending)
    data = {k: v for k, v in data.items() if v != ""}
    return _out(data if key == "-" else data.get(key), args)


def relation_set(state: dict, context: dict, argv: list[str]) -> str:
    args = Args(argv, values={"r", "file", "format"}, switches={"app"})
    relation = _relation(state, context, args.flags.get("r"))
    settings: dict[str, str] = {}
    if args.flags.get("file") == "-":
        settings.update(json.loads(sys.stdin.read() or "{}"))
    for item in args.positional:
        key, eq, value = item.partition("=")
        if not eq:
            raise ToolError(f'expected "key=value", got "{item}"', 2)
        settings[key] = value
    owner = state["unit"]
    if args.switch("app"):
        if not state["leader"]:
            raise ToolError("cannot write relation settings")
        owner = state["app"]
    pending = context["pending-relation"].setdefault(relation["id"], {}).setdefault(owner, {})
    pending.update(settings)
    return ""


def _port_arg(argv: list[str]) -> str:
    args = Args(argv, values={"endpoints"}, switches=set())
    positional = args.at_most(1)
    if not positional:
        raise ToolError("no port or range specified", 2)
    port = positional[0]
    return port if "/" in port or port == "icmp" else f"{port}/tcp"


def open_port(state: dict, context: dict, argv: list[str]) -> str:
    context["pending-ports"].append(["open", _port_arg(argv)])
    return ""


def close_port(state: dict, context: dict, argv: list[str]) -> str:
    context["pending-ports"].append(["close", _port_arg(argv)])
    return ""


def opened_ports(state: dict, context: dict, argv: list[str]) -> str:
    args = Args(argv, values={"format", "o", "output"}, switches={"endpoints"})
    args.at_most(0)
    ports = list(state["opened-ports"])
    for verb, port in context["pending-ports"]:
        if verb == "open" and port not in ports:
            ports.append(port)
        elif verb == "close" and port in ports:
            ports.remove(port)
    return _out(ports, args)


def _action(context: dict) -> dict[str, Any]:
    action = context.get("action")
    if action is None:
        raise ToolError("not running an action")
    return action


def action_get(state: dict, context: dict, argv: list[str]) -> str:
    args = Args(argv, values={"format", "o", "output"}, switches=set())
    keys = args.at_most(1)
    params = _action(context)["params"]
    return _out(params.get(keys[0]) if keys else params, args)


def action_set(state: dict, context: dict, argv: list[str]) -> str:
    args = Args(argv, values=set(), switches=set())
    action = _action(context)
    results = {}
    for item in args.positional:
        key, eq, value = item.partition("=")
        if not eq:
            raise ToolError(f'argument "{item}" must be of the form key...=value', 2)
        if not all(RESULT_KEY.match(part) for part in key.split(".")):
            raise ToolError(
                f'key "{key}" must start and end with lowercase alphanumeric, '
                "and contain only lowercase alphanumeric, hyphens and periods",
                2,
            )
        results[key] = value
    action["results"].update(results)
    return ""


def action_fail(state: dict, context: dict, argv: list[str]) -> str:
    args = Args(argv, values=set(), switches=set())
    message = args.at_most(1)
    action = _action(context)
    action["failed"] = True
    action["message"] = (
        message[0] if message else "action failed without reason given, check action for errors"
    )
    return ""


def action_log(state: dict, context: dict, argv: list[str]) -> str:
    args = Args(argv, values=set(), switches=set())
    if not args.positional:
        raise ToolError("no message specified", 2)
    _action(context)["log"].append(" ".join(args.positional))
    return ""


def application_version_set(state: dict, context: dict, argv: list[str]) -> str:
    args = Args(argv, values=set(), switches=set())
    versions = args.at_most(1)
    if not versions:
        raise ToolError("no version specified", 2)
    state["app-version"] = versions[0]
    return ""


TOOLS: dict[str, Callable[[dict, dict, list[str]], str]] = {
    "config-get": config_get,
    "is-leader": is_leader,
    "status-get": status_get,
    "status-set": status_set,
    "juju-log": juju_log,
    "storage-list": storage_list,
    "storage-get": storage_get,
    "resource-get": resource_get,
    "network-get": network_get,
    "relation-ids": relation_ids,
    "relation-list": relation_list,
    "relation-get": relation_get,
    "relation-set": relation_set,
    "open-port": open_port,
    "close-port": close_port,
    "opened-ports": opened_ports,
    "action-get": action_get,
    "action-set": action_set,
    "action-fail": action_fail,
    "action-log": action_log,
    "application-version-set": application_version_set,
}


def main(argv: list[str]) -> int:
    """Run the tool named by ``argv[0]`` (the link it was run as); print Juju's answer or error."""
    name = Path(argv[0]).name
    try:
        agent_dir = agent_dir_from_env(os.environ)
    except ToolError as exc:
        print(f"ERROR {exc}", file=sys.stderr)
        return 1
    status, output, error = 0, "", ""
    with locked_state(agent_dir) as state:
        context = state.get("context") or {}
        try:
            if context.get("id") != os.environ.get("JUJU_CONTEXT_ID"):
                raise ToolError(f'wrong context ID; got "{os.environ.get("JUJU_CONTEXT_ID")}"')
            tool = TOOLS.get(name)
            if tool is None:
                raise ToolError(f"unknown command: {name}", 2)
            output = tool(state, context, argv[1:])
        except ToolError as exc:
            status, error = exc.status, f"ERROR {exc}\n"
        with open(agent_dir / CALLS_FILE, "a") as calls:
            record = {
                "context": context.get("id"),
                "tool": name,
                "args": argv[1:],
                "status": status,
            }
            calls.write(json.dumps(record) + "\n")
    sys.stdout.write(output if output.endswith("\n") or not output else output + "\n")
    sys.stderr.write(error)
    return status


if __name__ == "__main__":
    # The tools directory's launcher passes the name it was run as first.
    sys.exit(main(sys.argv[1:]))
