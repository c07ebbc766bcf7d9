"""The charm's options, parsed once into one model; each bad value names the option."""

from __future__ import annotations

import pytest

from upgrader.config import CharmConfig
from upgrader.errors import InvalidInputError


def test_defaults() -> None:
    assert CharmConfig() == CharmConfig(port=8080, auto_sync=False)


@pytest.mark.parametrize("port", [0, 70000, "8080"])
def test_bad_port(port: object) -> None:
    with pytest.raises(
        InvalidInputError, match=r"invalid port .*: use a TCP port from 1 to 65535"
    ):
        CharmConfig(port=port)  # type: ignore[arg-type]


def test_bad_auto_sync() -> None:
    with pytest.raises(InvalidInputError, match="invalid auto-sync 'yes': use true or false"):
        CharmConfig(auto_sync="yes")  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [0, 17, -1, True, "4", 2.0])
def test_parallel_downloads_option_is_checked(value: object) -> None:
    with pytest.raises(ValueError, match=r"invalid parallel-downloads .*from 1 to 16"):
        CharmConfig(parallel_downloads=value)  # type: ignore[arg-type]
    assert CharmConfig(parallel_downloads=16).parallel_downloads == 16


@pytest.mark.parametrize("option", ["signing_keys", "ca_certificates"])
def test_key_and_certificate_texts_are_bounded(option: str) -> None:
    name = option.replace("_", "-")
    with pytest.raises(InvalidInputError, match=rf"invalid {name}: 4194305 characters, more than"):
        CharmConfig(**{option: "x" * (4 * 1024 * 1024 + 1)})  # type: ignore[arg-type]
