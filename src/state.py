"""What the charm knows at the start of a dispatch, read from Juju once."""

from __future__ import annotations

import dataclasses
import logging
import socket
from pathlib import Path

import ops

from upgrader.config import CharmConfig
from upgrader.errors import InvalidInputError
from upgrader.mirror import agent_metadata_url
from upgrader.nginx import DEFAULT_PORT
from upgrader.serving import LeaderMirror
from upgrader.status import BINARIES_STORAGE
from upgrader.versions import Version, parse_lenient

logger = logging.getLogger(__name__)

PEERS = "upgrader-peers"
MIRROR_BINDING = "mirror"
"""The extra binding whose address the controller and the other units reach the mirror at.

Unbound, it is in the application's default space, like ``juju-info``; ``juju deploy ...
--bind "mirror=<space>"`` puts it in the space the controller reaches.
"""


@dataclasses.dataclass(frozen=True)
class CharmState:
    """The unit's view of Juju for one dispatch; everything else is derived from it.

    Attributes:
        unit: this unit's name (``upgrader/0``).
        app: the application's name.
        agent_version: this unit's Juju agent version, which is the controller's.
        leader: whether this unit is the leader.
        config: the parsed options; None when one is invalid.
        config_error: why the config is invalid (the option and the accepted values).
        storage_root: the binaries storage's mount point; None when none is attached.
        leader_mirror: what the leader publishes to its peers, when it does.
        address: the address the controller and the other units reach this unit at.
        charm_dir: where the charm's code is (the background job runs it).
    """

    unit: str
    app: str
    agent_version: Version
    leader: bool
    config: CharmConfig | None
    config_error: str
    storage_root: Path | None
    leader_mirror: LeaderMirror | None
    address: str
    charm_dir: Path

    @classmethod
    def from_charm(cls, charm: ops.CharmBase) -> CharmState:
        """Read the state from Juju (config, storage, leadership, peers, network)."""
        try:
            config, config_error = charm.load_config(CharmConfig), ""
        except InvalidInputError as exc:
            config, config_error = None, str(exc)
        storages = charm.model.storages[BINARIES_STORAGE]
        peers = charm.model.get_relation(PEERS)
        return cls(
            unit=charm.unit.name,
            app=charm.app.name,
            agent_version=parse_lenient(str(charm.model.juju_version)),
            leader=charm.unit.is_leader(),
            config=config,
            config_error=config_error,
            storage_root=Path(storages[0].location) if storages else None,
            leader_mirror=LeaderMirror.from_dict(peers.data[charm.app]) if peers else None,
            address=_address(charm.model),
            charm_dir=charm.charm_dir,
        )

    @property
    def port(self) -> int:
        """The port the mirror is served on."""
        return self.config.port if self.config is not None else DEFAULT_PORT

    @property
    def mirror_url(self) -> str:
        """What the controller's ``agent-metadata-url`` is once this unit serves its mirror."""
        return agent_metadata_url(self.address, self.port)

    @property
    def slug(self) -> str:
        """The unit's name as a file name (``upgrader-0``), for its nginx site and job."""
        return self.unit.replace("/", "-")


def _address(model: ops.Model) -> str:
    """The ingress address of the mirror's binding, or this machine's FQDN when Juju has none."""
    try:
        binding = model.get_binding(MIRROR_BINDING)
        address = binding.network.ingress_address if binding is not None else None
    except ops.ModelError as exc:
        logger.warning("cannot read this unit's address: %s", exc)
        address = None
    return str(address) if address else socket.getfqdn()
