"""Upgrade routes: how the running controller reaches the target, by the rules of its Juju line.

The policy (:mod:`upgrader.selection`) chooses the target; this module says how Juju lets the
controller get there:

* ``in-place``: ``juju upgrade-controller`` reaches the target. Juju 3 upgrades a controller in
  place only within its major.minor; Juju 2 within its major.
* ``new-controller``: bootstrap a controller at the target, migrate every model to it, upgrade
  every model. Juju's migration prechecks decide whether a model may move.
* ``in-place-then-new-controller``: first in place to the newest patch of the controller's own
  series, then a new controller: when the models must be newer to migrate (a 2.x model needs
  2.9.43 to move to a 3.2+ controller) and whenever a newer patch exists, as Juju's upgrade docs
  recommend a patch upgrade first.
* ``none``: the controller already runs the target.

Everything here is plain data in, plain data out. Every rule cites its source in Juju's code in
ARCHITECTURE.md ("Upgrade routes").
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Sequence

from .errors import SelectionError
from .selection import controller_upgrade_blocker
from .versions import Version


class Route(enum.Enum):
    """How the controller reaches the target."""

    IN_PLACE = "in-place"
    NEW_CONTROLLER = "new-controller"
    IN_PLACE_THEN_NEW_CONTROLLER = "in-place-then-new-controller"
    NONE = "none"


@dataclasses.dataclass(frozen=True)
class HostedModel:
    """A model on the controller, as ``juju models`` lists it.

    Attributes:
        name: the qualified name, ``owner/name`` (``admin/prod``).
        version: the model's agent version.
        kind: ``iaas`` (machines) or ``caas`` (Kubernetes).
        cloud: the cloud the model runs on, when known.
    """

    name: str
    version: Version
    kind: str = "iaas"
    cloud: str = ""

    @property
    def short_name(self) -> str:
        """The name without its owner."""
        return self.name.rpartition("/")[2]


@dataclasses.dataclass(frozen=True)
class RoutePlan:
    """The route from the running controller to the target.

    Attributes:
        route: the kind of route.
        controller: the version the controller runs now.
        target: the version the policy chose.
        hops: the versions the controller (or its successor) passes through, in order.
        stage: every version whose agent binaries the mirror must hold, oldest first.
        in_place_target: when the route is not in place, the newest version
            ``juju upgrade-controller`` reaches (the controller's own version if nothing newer).
        reason: when the route is not in place, what ``juju upgrade-controller --agent-version
            TARGET`` answers, in Juju's words.
        models: the hosted models, when known (None: not known, e.g. on a charm unit).
        kubernetes: the controller runs on Kubernetes (it pulls images, not agent tarballs).
        notes: what the operator should know, one sentence each.
    """

    route: Route
    controller: Version
    target: Version
    hops: tuple[Version, ...] = ()
    stage: tuple[Version, ...] = ()
    in_place_target: Version | None = None
    reason: str = ""
    models: tuple[HostedModel, ...] | None = None
    kubernetes: bool = False
    notes: tuple[str, ...] = ()

    @property
    def in_place(self) -> bool:
        """The controller itself is upgraded (in-place, or the first hop of the two-step route)."""
        return self.route in (Route.IN_PLACE, Route.IN_PLACE_THEN_NEW_CONTROLLER)

    @property
    def new_controller(self) -> bool:
        """A new controller is bootstrapped and the models migrate to it."""
        return self.route in (Route.NEW_CONTROLLER, Route.IN_PLACE_THEN_NEW_CONTROLLER)

    @property
    def in_place_version(self) -> Version | None:
        """The version ``upgrade-controller`` is run to, if it is run."""
        return self.hops[0] if self.in_place else None


def in_place_allowed(controller: Version, target: Version) -> bool:
    """Whether ``juju upgrade-controller`` takes the controller from ``controller`` to ``target``.

    Juju 3 blocks any other major.minor (``getCheckTargetVersionForControllerModel``); Juju 2.9
    refuses another major (``UpgradeToAllowed``, whose table is empty), and earlier 2.x moved
    within their major.
    """
    if target <= controller:
        return False
    if controller.major >= 3:
        return target.major_minor == controller.major_minor
    return target.major == controller.major


def in_place_refusal(controller: Version, target: Version) -> str:
    """What ``juju upgrade-controller --agent-version TARGET`` answers when it cannot go there."""
    if controller.major >= 3:
        return controller_upgrade_blocker(controller, target)
    return f'upgrade to "{target}" is not supported from "{controller}"'


def min_migrate_version(target: Version) -> Version | None:
    """The oldest model version a controller at ``target`` accepts from the previous major.

    ``MinMajorMigrateVersions`` in ``upgrades/upgradevalidation/version.go`` of the target's
    line: 2.9.36 on 3.1, 2.9.43 from 3.2 on (3.6 included), 3.1.0 on main (4.x). None for a
    major Juju has no table for.
    """
    if target.major == 3:
        return Version(2, 9, 36) if target.minor <= 1 else Version(2, 9, 43)
    if target.major == 4:
        return Version(3, 1, 0)
    return None


def migration_refusal(model: Version, target: Version) -> str | None:
    """What the target controller's migration prechecks answer for a model, or None if allowed.

    ``migration/precheck.go`` ``TargetPrecheck`` with ``upgradevalidation.MigrateToAllowed``:
    the same major always moves; the previous major needs the table's minimum (tags ignored).
    """
    if model > target:
        return f"model has higher version than target controller ({model} > {target})"
    if model.major == target.major:
        return None
    minimum = min_migrate_version(target)
    if minimum is None or model.major != target.major - 1:
        return f'migrate to "{target}" is not supported from "{model}"'
    if dataclasses.replace(model, tag="") >= minimum:
        return None
    return (
        f"model must be upgraded to at least version {minimum} before being migrated to a "
        f"controller with version {target}"
    )


def plan_route(
    controller: Version,
    target: Version,
    available: Iterable[Version],
    *,
    models: Sequence[HostedModel] | None = None,
    kubernetes: bool = False,
) -> RoutePlan:
    """The route from ``controller`` to ``target`` over the versions the stream holds.

    Args:
        controller: the controller's agent version.
        target: the version the policy chose (the controller's own when it is up to date).
        available: the versions in the stream (for the OS and architectures in use).
        models: the hosted models with their versions, when known (not the controller model).
        kubernetes: the controller runs on Kubernetes.

    Raises:
        SelectionError: no route exists; the message is Juju's own, then what is missing.
    """
    versions = sorted(set(available))
    known = tuple(models) if models is not None else None
    if target <= controller:
        return _no_upgrade(controller, known, kubernetes)
    if in_place_allowed(controller, target):
        return RoutePlan(
            Route.IN_PLACE,
            controller,
            target,
            hops=(target,),
            stage=() if kubernetes else (target,),
            models=known,
            kubernetes=kubernetes,
            notes=_model_notes(known, controller),
        )
    newest = max((v for v in versions if in_place_allowed(controller, v)), default=None)
    source = newest or controller
    # Every model is first upgraded to the source controller's version (upgrade-model goes to
    # exactly that), so the prechecks see each model at ``source``.
    refusal = migration_refusal(source, target)
    if refusal is not None:
        raise SelectionError(f"{refusal}: {_missing(controller, source, target)}")
    hops = (newest, target) if newest is not None else (target,)
    stage = hops
    if newest is None and unfit_to_migrate(known, controller, target) != []:
        # Models are first upgraded to the controller's own version; their machines may need
        # binaries of it for other architectures.
        stage = (controller, target)
    notes = [*_model_notes(known, controller), *_migration_notes(controller, source, target)]
    return RoutePlan(
        Route.IN_PLACE_THEN_NEW_CONTROLLER if newest is not None else Route.NEW_CONTROLLER,
        controller,
        target,
        hops=hops,
        stage=() if kubernetes else stage,
        in_place_target=source,
        reason=in_place_refusal(controller, target),
        models=known,
        kubernetes=kubernetes,
        notes=tuple(notes),
    )


def unfit_to_migrate(
    models: Sequence[HostedModel] | None, controller: Version, target: Version
) -> list[HostedModel] | None:
    """The models the target's prechecks would refuse as they are; None when models are unknown.

    Unknown models are assumed fit unless the route crosses a major (then any may lag).
    """
    if models is None:
        return None if controller.major < target.major else []
    return [m for m in models if migration_refusal(m.version, target) is not None]


def _no_upgrade(
    controller: Version, models: tuple[HostedModel, ...] | None, kubernetes: bool
) -> RoutePlan:
    """Route ``none``; models below the controller still need their own binaries staged."""
    behind = [m for m in models or () if m.version < controller]
    stage = (controller,) if behind and not kubernetes else ()
    return RoutePlan(
        Route.NONE,
        controller,
        controller,
        stage=stage,
        models=models,
        kubernetes=kubernetes,
        notes=_model_notes(models, controller),
    )


def _model_notes(models: tuple[HostedModel, ...] | None, controller: Version) -> tuple[str, ...]:
    """Flag every model whose version is not the controller's."""
    return tuple(
        f"model {m.name} runs {m.version}, not the controller's {controller}"
        for m in models or ()
        if m.version != controller
    )


def _migration_notes(controller: Version, source: Version, target: Version) -> list[str]:
    """What the operator should know before migrating from a Juju 3 source."""
    if controller.major < 3 or source.major != target.major:
        return []
    # migrationtarget.Prechecks (apiserver/facades/controller/migrationtarget) refuses a source
    # whose facades do not all overlap the target's, asking for a newer source patch.
    return [
        f"if juju migrate answers 'Source controller does not support required facades for "
        f"performing migration', the {source.major}.{source.minor} controller needs a newer "
        f"patch than {source} (or an intermediate controller) before it can migrate to {target}"
    ]


def _missing(controller: Version, source: Version, target: Version) -> str:
    """Say what the stream lacks for a route to exist."""
    minimum = min_migrate_version(target)
    if minimum is None or source.major != target.major - 1:
        return f"no route from {controller} to {target}: Juju cannot migrate models across them"
    series = f"{controller.major}.x" if controller.major < 3 else f"{source.major}.{source.minor}"
    newest = f"the newest is {source}" if source != controller else "it has none newer"
    return (
        f"the stream has no {series} agent at or above {minimum} to upgrade the controller and "
        f"its models to first ({newest}); stage one from a stream that has it"
    )
