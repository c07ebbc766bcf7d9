"""The runbook: every command an operator runs to follow a route, in order, one per line.

Commands carry every flag Juju needs, spelled as Juju's own CLI spells it, and absolute paths
(Juju refuses a relative ``--source``). Lines starting with ``#`` say what to do between
commands (wait, repeat for each model, carry files); they are harmless if pasted into a shell.
Where a value cannot be known where the plan is made (a cloud name on a charm unit, the users to
recreate) the line holds a ``<placeholder>``. Sources for every flag and default are listed in
ARCHITECTURE.md ("Upgrade routes").
"""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Iterable

from .routes import HostedModel, Route, RoutePlan, unfit_to_migrate
from .versions import Version

NOTHING_TO_DO = "nothing to do: the controller runs the newest version this policy allows"

AGENT_METADATA_URL = "<agent-metadata-url>"
"""Placeholder for the mirror URL when the plan does not know it."""


def bootstrap_base(target: Version) -> str:
    """The base a new controller of ``target`` is bootstrapped on: that Juju's default LTS.

    Juju 3.6 made ubuntu@24.04 its default (juju/juju PR #18332, ``DefaultSupportedLTSBase``);
    from 3.0 to 3.5 it was ubuntu@22.04 (PR #14181), which every 3.x controller charm supports.
    """
    return "ubuntu@24.04" if target.major_minor >= (3, 6) else "ubuntu@22.04"


def channel(target: Version) -> str:
    """The snap and charm channel that carries ``target``: ``3.6/stable``, ``3.7/beta``...

    Juju publishes each minor in its own track, a release on ``stable``, its betas on
    ``beta``, its release candidates on ``candidate`` and other builds on ``edge``
    (Juju's "Juju snap tracks and channels", discourse.charmhub.io/t/61; the juju-controller
    charm follows the client, ``--controller-charm-channel`` defaulting to
    ``<major>.<minor>/stable`` in cmd/juju/commands/bootstrap.go).
    """
    risk = "stable"
    if target.tag:
        risk = {"beta": "beta", "rc": "candidate"}.get(target.tag, "edge")
    return f"{target.major}.{target.minor}/{risk}"


JUJU_DB_CHANNEL = "4.4/stable"
"""``DefaultJujuDBSnapChannel`` (controller/config.go): the juju-db snap every 3.x uses."""

IMAGE_NAMESPACE = "docker.io/jujusolutions"
"""``JujudOCINamespace`` (cloudconfig/podcfg/image.go): where Juju's images come from."""

IMAGE_REPO = "<registry>/jujusolutions"
"""Placeholder for the site's ``caas-image-repo`` when the plan does not know it."""


@dataclasses.dataclass(frozen=True)
class Site:
    """Where the controller reads agent binaries from, and how more are staged there.

    Attributes:
        agent_metadata_url: the mirror URL for the ``agent-metadata-url`` model config.
        stream: the agent stream the mirror holds (``released``, ``proposed``, ...).
        staged: the versions already staged for every architecture in use.
        sync_command: the command that stages binaries. ``{series}`` in it is replaced by each
            major.minor to stage (one command each), ``{version}`` by each version; without
            either it is printed once and must stage everything the route needs.
        after_sync: lines to print after the staging commands (e.g. how to serve them).
    """

    agent_metadata_url: str = AGENT_METADATA_URL
    stream: str = "released"
    staged: frozenset[Version] = frozenset()
    sync_command: str = ""
    after_sync: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class ControllerInfo:
    """What the plan knows of the controller besides its version; all optional.

    Attributes:
        name: the controller's name in the client's store (commands then name it).
        cloud: ``cloud[/region]`` to bootstrap a new controller on.
        architectures: the architectures in use; the first is the controller's own.
        charm_bases: on Kubernetes, the bases of the charms in use (``ubuntu@22.04``).
        image_repo: on Kubernetes, the site's registry path (``caas-image-repo``).
        offline_dir: the absolute directory offline bootstrap files are fetched into.
        new_name: the new controller's name.
        base: the base the new controller is bootstrapped on (default: the target's default
            LTS, :func:`bootstrap_base`).
    """

    name: str | None = None
    cloud: str | None = None
    architectures: tuple[str, ...] = ("amd64",)
    charm_bases: tuple[str, ...] = ()
    image_repo: str | None = None
    offline_dir: str | None = None
    new_name: str | None = None
    base: str | None = None


def default_offline_dir(target: Version) -> str:
    """Where the offline bootstrap files go when the caller names no directory.

    A directory on the operator's hosts that the printed commands create; nothing here
    writes to it. /var/tmp survives reboots, unlike /tmp, and any user may create it.
    """
    return f"/var/tmp/juju-{target}"  # noqa: S108 - printed for the operator, never written here


def new_controller_name(target: Version, info: ControllerInfo) -> str:
    """The new controller's name: the old one's with the target's major.minor."""
    if info.new_name:
        return info.new_name
    stem = info.name or "controller"
    return f"{stem}-{target.major}-{target.minor}"


def charm_base_tag(base: str) -> str:
    """The ``charm-base`` image tag of a base: ``ubuntu@22.04`` is ``ubuntu-22.04``.

    As ``podcfg.ImageForBase``: ``<os>-<track>``, with ``-<risk>`` unless the risk is stable.
    """
    name, _, channel = base.partition("@")
    track, _, risk = channel.partition("/")
    tag = f"{name}-{track}"
    return tag if risk in ("", "stable") else f"{tag}-{risk}"


def runbook(
    route: RoutePlan, site: Site | None = None, info: ControllerInfo | None = None
) -> list[str]:
    """The commands that follow ``route``, in order, one per line.

    Args:
        route: the route.
        site: where the controller reads agent binaries from; None when the plan does not
            serve a mirror (no staging or ``agent-metadata-url`` steps for an in-place route).
        info: what is known of the controller.
    """
    return _Runbook(route, site, info or ControllerInfo()).lines()


class _Runbook:
    """Writes the lines of one runbook."""

    def __init__(self, route: RoutePlan, site: Site | None, info: ControllerInfo) -> None:
        self.route = route
        self.site = site
        self.info = info
        stream = site.stream if site is not None else "released"
        # Juju searches only the released stream unless told otherwise (upgrade-controller
        # --agent-stream; the agent-stream model config).
        self.stream = "" if stream == "released" else stream
        self.stream_flag = f" --agent-stream {stream}" if self.stream else ""
        url = site.agent_metadata_url if site is not None else AGENT_METADATA_URL
        # The operator's URL may hold `&` or `$` (a query string): one shell word when pasted.
        self.url = url if url == AGENT_METADATA_URL else shlex.quote(url)
        self.ctrl_flag = f" -c {info.name}" if info.name else ""
        self.prefix = f"{info.name}:" if info.name else ""

    def lines(self) -> list[str]:
        route = self.route
        if route.route is Route.NONE:
            behind = [m for m in route.models or () if m.version < route.controller]
            if not behind:
                return [NOTHING_TO_DO]
            return [
                *self.stage(route.stage),
                *self.point_controller(),
                *self.upgrade_models(route.controller, behind),
            ]
        lines: list[str] = []
        if route.kubernetes:
            lines += self.copy_images()
        else:
            lines += self.stage(route.stage)
        version = route.in_place_version
        if version is not None:
            lines += self.point_controller()
            lines += self.upgrade_controller(version)
            lines += self.upgrade_models(version, self.models_below(version))
        elif route.new_controller:
            unfit = unfit_to_migrate(route.models, route.controller, route.target)
            if unfit != []:
                # A model below what the target accepts goes to the controller's version first.
                lines += self.point_controller()
                lines += self.upgrade_models(route.controller, unfit)
        if route.new_controller:
            lines += self.new_controller(route.target)
        return lines

    # --- staging ---------------------------------------------------------------------------

    def stage(self, versions: Iterable[Version]) -> list[str]:
        """The commands that stage every version the mirror lacks."""
        site = self.site
        if site is None:
            return []
        todo = [v for v in versions if v not in site.staged]
        if not todo:
            return []
        command = site.sync_command
        if not command:
            shown = ", ".join(str(v) for v in todo)
            return [f"# stage the agent binaries of {shown} for every architecture in use"]
        if "{series}" in command:
            series = dict.fromkeys(f"{v.major}.{v.minor}" for v in todo)
            lines = [command.replace("{series}", s) for s in series]
        elif "{version}" in command:
            lines = [command.replace("{version}", str(v)) for v in todo]
        else:
            lines = [command]
        return [*lines, *site.after_sync]

    def point_controller(self) -> list[str]:
        """Point the controller model at the mirror (and its stream)."""
        if self.site is None or self.route.kubernetes:
            return []
        stream = f" agent-stream={self.stream}" if self.stream else ""
        # Hosted models' agents fetch binaries the controller has not cached through their own
        # model's config (apiserver/tools.go), so every model needs the URL: the default.
        return [
            f"juju model-config -m {self.prefix}controller agent-metadata-url={self.url}{stream}",
            f"juju model-defaults{self.ctrl_flag} agent-metadata-url={self.url}{stream}",
        ]

    # --- in place --------------------------------------------------------------------------

    def upgrade_controller(self, version: Version) -> list[str]:
        """A dry run (Juju's validators list any blocker), the upgrade, the wait."""
        command = f"juju upgrade-controller{self.ctrl_flag} --agent-version {version}"
        return [
            f"{command}{self.stream_flag} --dry-run",
            f"{command}{self.stream_flag}",
            f"# wait until `juju status -m {self.prefix}controller` shows every controller "
            f"agent at {version}",
        ]

    def models_below(self, version: Version) -> list[HostedModel] | None:
        """The known models below ``version``; None when the models are not known."""
        if self.route.models is None:
            return None
        return [m for m in self.route.models if m.version < version]

    def upgrade_models(self, version: Version, models: list[HostedModel] | None) -> list[str]:
        """``upgrade-model`` for each hosted model (they stay put until upgraded)."""
        if models is None:
            return [
                "# then for each model `juju models` lists, other than controller, as <model>:",
                *self.upgrade_model(version, f"{self.prefix}<model>"),
            ]
        return [line for m in models for line in self.upgrade_model(version, self.prefix + m.name)]

    def upgrade_model(self, version: Version, model: str) -> list[str]:
        command = f"juju upgrade-model -m {model} --agent-version {version}{self.stream_flag}"
        return [f"{command} --dry-run", command]

    # --- Kubernetes ------------------------------------------------------------------------

    def copy_images(self) -> list[str]:
        """Copy the images the upgrade pulls into the site's registry (``caas-image-repo``)."""
        route = self.route
        repo = self.info.image_repo or IMAGE_REPO
        images = [f"jujud-operator:{v}" for v in route.hops]
        if route.new_controller:
            db = JUJU_DB_CHANNEL.split("/")[0]
            images.append(f"juju-db:{db}")
            images += [f"charm-base:{charm_base_tag(b)}" for b in self.info.charm_bases]
        lines = [
            f"skopeo copy --all docker://{IMAGE_NAMESPACE}/{image} docker://{repo}/{image}"
            for image in images
        ]
        if route.new_controller and not self.info.charm_bases:
            lines.append(
                f"# and each charm-base image your charms use, e.g. skopeo copy --all "
                f"docker://{IMAGE_NAMESPACE}/charm-base:ubuntu-22.04 "
                f"docker://{repo}/charm-base:ubuntu-22.04"
            )
        if route.in_place:
            lines.append(f"juju controller-config{self.ctrl_flag} caas-image-repo")
            lines.append(f"# the registry path it shows must be {repo}")
        return lines

    # --- a new controller ------------------------------------------------------------------

    def new_controller(self, target: Version) -> list[str]:
        info = self.info
        series = f"{target.major}.{target.minor}"
        base = info.base or bootstrap_base(target)
        # The operator's directory may hold spaces or shell characters: one word when pasted,
        # with the wildcards of the file names after it left unquoted.
        directory = shlex.quote(info.offline_dir or default_offline_dir(target))
        new = new_controller_name(target, info)
        cloud = info.cloud or "<cloud>"
        kubernetes = self.route.kubernetes
        lines = [
            f"# a new {series} controller; on a host with internet access, fetch what an "
            "offline bootstrap needs:",
            f"mkdir -p {directory}",
            f"snap download juju --channel={channel(target)} --target-directory={directory}",
        ]
        if not kubernetes:
            arch = info.architectures[0] if info.architectures else "amd64"
            lines += [
                f"snap download juju-db --channel={JUJU_DB_CHANNEL} "
                f"--target-directory={directory}",
                f"juju download juju-controller --channel {channel(target)} --base {base} "
                f"--arch {arch} --filepath {directory}/juju-controller.charm",
            ]
        lines += [
            f"# carry {directory} to the client host (same path), then install the {series} "
            "client there:",
            f"sudo snap ack {directory}/juju_*.assert",
            f"sudo snap install {directory}/juju_*.snap",
        ]
        if kubernetes:
            repo = info.image_repo or IMAGE_REPO
            lines += [
                "# on Kubernetes the juju-controller charm comes from Charmhub (a local charm "
                "file is refused)",
                f"juju bootstrap {cloud} {new} --no-switch --agent-version {target} "
                f"--config caas-image-repo={repo}",
            ]
        else:
            stream = ""
            if self.stream:
                stream = (
                    f" --config agent-stream={self.stream} "
                    f"--model-default agent-stream={self.stream}"
                )
            lines.append(
                f"juju bootstrap {cloud} {new} --no-switch --bootstrap-base {base} "
                f"--agent-version {target} "
                f"--controller-charm-path {directory}/juju-controller.charm "
                f"--db-snap {directory}/juju-db_*.snap "
                f"--db-snap-asserts {directory}/juju-db_*.assert "
                f"--config agent-metadata-url={self.url} "
                f"--model-default agent-metadata-url={self.url}{stream}"
            )
        lines += self.recreate(new)
        lines += self.migrate(target, new)
        lines.append(f"juju change-user-password -c {new} <user> --reset")
        lines.append("# send each user the `juju register` line it prints")
        lines += self.keep_mirror(new)
        lines.append(f"# the old controller can go once every model runs on {new}")
        return lines

    def keep_mirror(self, new: str) -> list[str]:
        """The models on the new controller still read the old mirror: move it first."""
        if self.site is None or self.route.kubernetes:
            return []
        return [
            f"# {new} and its models read agent binaries from {self.url}; before that mirror "
            f"goes with the old controller, serve one from {new} (e.g. deploy upgrader in "
            f"{new}:controller and import the same binaries) and point {new} at it:",
            f"juju model-config -m {new}:controller agent-metadata-url=<new mirror URL>",
            f"juju model-defaults -c {new} agent-metadata-url=<new mirror URL>",
        ]

    def recreate(self, new: str) -> list[str]:
        """Users, clouds and credentials: a model moves only when they exist on the target."""
        lines = [
            f"# recreate users, clouds and credentials on {new} (migration needs them there):",
            f"juju users{self.ctrl_flag} --format yaml",
            f"juju add-user -c {new} <user>",
        ]
        own_cloud = (self.info.cloud or "").partition("/")[0]
        models = self.route.models
        if models is None:
            lines += [
                "# for each other cloud your models use:",
                f"juju add-cloud -c {new} <cloud> <cloud.yaml>",
                f"juju add-credential -c {new} <cloud> -f <credentials.yaml>",
            ]
            return lines
        for cloud in dict.fromkeys(m.cloud for m in models if m.cloud and m.cloud != own_cloud):
            lines += [
                f"juju add-cloud -c {new} {cloud} <cloud.yaml>",
                f"juju add-credential -c {new} {cloud} -f <credentials.yaml>",
            ]
        return lines

    def migrate(self, target: Version, new: str) -> list[str]:
        """Migrate each model (from the old controller, still current), then upgrade it."""
        lines = [f"juju switch {self.info.name}"] if self.info.name else []
        models = self.route.models
        if models is None:
            return [
                *lines,
                "# for each model `juju models` lists, other than controller, as <model>:",
                f"juju migrate <model> {new}",
                f"# wait until `juju show-model {new}:<model>` shows the migration done",
                *self.upgrade_model(target, f"{new}:<model>"),
            ]
        for model in models:
            lines += [
                f"juju migrate {model.name} {new}",
                f"# wait until `juju show-model {new}:{model.name}` shows the migration done",
                *self.upgrade_model(target, f"{new}:{model.name}"),
            ]
        return lines
