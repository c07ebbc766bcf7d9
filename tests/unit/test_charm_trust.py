"""The charm's trust options and stream statuses, driven by Scenario against real servers.

Streams are real files signed with throwaway gpg keys and served on 127.0.0.1 (plain HTTP,
HTTPS with a throwaway CA, or through a real forward proxy).
"""

from __future__ import annotations

import os
from pathlib import Path

import ops
import pytest
from ops import testing

from support.gpg import NEEDS_GPG, Keys, sign_stream
from support.proxy import running_proxy
from support.servers import serve_directory
from support.streams import Agent, write_stream
from support.tls import PKI, make_pki
from upgrader.fetch import FetchSettings

pytestmark = [*NEEDS_GPG, pytest.mark.usefixtures("no_resource")]

AGENTS = [Agent("3.6.12", "amd64"), Agent("3.6.9", "amd64"), Agent("3.7.0", "amd64")]
INDEX = "/streams/v1/index2.sjson"
PRODUCTS = "/streams/v1/com.ubuntu.juju-released-agents.sjson"
HINT = "To accept unsigned metadata from this source, run: juju config upgrader "
HINT += "verify-signatures=false"


@pytest.fixture(autouse=True)
def _no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retry without pausing, so transient failures are quick to test."""
    monkeypatch.setattr(FetchSettings, "backoff_delay", lambda self, attempt: 0.0)
    for name in ("JUJU_CHARM_HTTP_PROXY", "JUJU_CHARM_HTTPS_PROXY", "JUJU_CHARM_NO_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def signed(tmp_path: Path, gpg_keys: Keys) -> Path:
    write_stream(tmp_path, AGENTS)
    sign_stream(tmp_path, gpg_keys.signer, gpg_keys.alice)
    return tmp_path


@pytest.fixture
def unsigned(tmp_path: Path) -> Path:
    return write_stream(tmp_path, AGENTS)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


def state(config: dict, **kwargs: object) -> testing.State:
    return testing.State(
        config=config,
        storages=[testing.Storage("binaries")],
        **kwargs,  # type: ignore[arg-type]
    )


def plan(ctx, config: dict) -> tuple[dict, testing.State]:
    out = ctx.run(ctx.on.action("plan-upgrade", params={"agent-version": "3.6.9"}), state(config))
    return ctx.action_results, out


def failed_plan(ctx, config: dict) -> testing.ActionFailed:
    with pytest.raises(testing.ActionFailed) as caught:
        plan(ctx, config)
    return caught.value


def status_message(failure: testing.ActionFailed) -> object:
    """The unit status the failed action left (an ops status)."""
    assert isinstance(failure.state, testing.State)
    return failure.state.unit_status


# --------------------------------------------------------------------------- signatures


def test_signed_stream_with_signing_keys_is_verified(ctx, signed: Path, gpg_keys: Keys) -> None:
    with serve_directory(signed) as url:
        results, out = plan(ctx, {"stream-url": url, "signing-keys": gpg_keys.alice.armoured})

    assert (results["source"], results["verified"]) == (url, "true")
    assert "unverified-reason" not in results
    assert out.unit_status == ops.ActiveStatus("agent 3.6.8; upgrade target 3.7.0")


def test_unsigned_stream_is_refused_by_default(ctx, unsigned: Path) -> None:
    with serve_directory(unsigned) as url:
        failure = failed_plan(ctx, {"stream-url": url})

    assert failure.message.startswith(
        f"cannot read agent stream: no signed agent metadata at {url}: tried {url}{INDEX}, "
    )
    assert failure.message.endswith(HINT)
    status = status_message(failure)
    assert isinstance(status, ops.BlockedStatus) and HINT in status.message


def test_unsigned_stream_when_verification_is_off(ctx, unsigned: Path) -> None:
    with serve_directory(unsigned) as url:
        results, out = plan(ctx, {"stream-url": url, "verify-signatures": False})

    assert (results["source"], results["verified"]) == (url, "false")
    assert results["unverified-reason"].startswith(f"no signed metadata (tried {url}{INDEX}")
    assert out.unit_status == ops.ActiveStatus(
        "agent 3.6.8; upgrade target 3.7.0 (unverified source)"
    )


def test_signed_stream_is_still_verified_when_verification_is_off(
    ctx, signed: Path, gpg_keys: Keys
) -> None:
    config = {"verify-signatures": False, "signing-keys": gpg_keys.alice.armoured}
    with serve_directory(signed) as url:
        results, out = plan(ctx, {"stream-url": url, **config})

    assert results["verified"] == "true"
    assert out.unit_status == ops.ActiveStatus("agent 3.6.8; upgrade target 3.7.0")


def test_juju_key_is_used_without_signing_keys(ctx, signed: Path, gpg_keys: Keys) -> None:
    with serve_directory(signed) as url:
        failure = failed_plan(ctx, {"stream-url": url})

    expected = (
        f"cannot read agent stream: signature of {url}{INDEX} is not valid: signed by unknown "
        f"key {gpg_keys.alice.fingerprint} (not in the configured signing keys)"
    )
    assert failure.message == expected
    assert status_message(failure) == ops.BlockedStatus(expected)


def test_tampered_stream_blocks_and_recovers_on_update_status(
    ctx, signed: Path, gpg_keys: Keys
) -> None:
    products = signed / PRODUCTS.lstrip("/")
    good = products.read_bytes()
    products.write_bytes(good.replace(b"3.7.0", b"3.7.1"))
    config = {"signing-keys": gpg_keys.alice.armoured}
    with serve_directory(signed) as url:
        config["stream-url"] = url
        out = ctx.run(ctx.on.config_changed(), state(config))
        assert isinstance(out.unit_status, ops.BlockedStatus)
        assert f"signature of {url}{PRODUCTS} is not valid: bad signature" in (
            out.unit_status.message
        )

        products.write_bytes(good)
        out = ctx.run(ctx.on.update_status(), out)

    # Healthy again: the unit serves its (still empty) mirror.
    assert isinstance(out.unit_status, ops.ActiveStatus)
    assert out.unit_status.message.startswith("serving no agents yet")


# --------------------------------------------------------------------------- config validation


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"signing-keys": "4286E8DA42CF6232F215EC37378F62AF6A157DB3"},
            "invalid config: signing-keys: no OpenPGP public key found; expected "
            "ASCII-armoured keys (-----BEGIN PGP PUBLIC KEY BLOCK-----)",
        ),
        (
            {"signing-keys": "-----BEGIN PGP PRIVATE KEY BLOCK-----\nxx\n"},
            "invalid config: signing-keys: holds a private key",
        ),
        (
            {"ca-certificates": "not a certificate"},
            "invalid config: ca-certificates: no PEM certificate found",
        ),
        (
            {"ca-certificates": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"},
            "invalid config: ca-certificates: not valid PEM certificates",
        ),
    ],
)
def test_bad_trust_options_block_and_fail_the_action(
    ctx, signed: Path, config: dict, message: str
) -> None:
    with serve_directory(signed) as url:
        out = ctx.run(ctx.on.config_changed(), state({"stream-url": url, **config}))
        failure = failed_plan(ctx, {"stream-url": url, **config})

    assert isinstance(out.unit_status, ops.BlockedStatus)
    assert out.unit_status.message.startswith(message)
    assert failure.message.startswith(message)


# --------------------------------------------------------------------------- network


def test_ca_certificates_let_the_charm_reach_a_private_https_source(
    ctx, signed: Path, gpg_keys: Keys, pki: PKI
) -> None:
    config = {"signing-keys": gpg_keys.alice.armoured}
    with serve_directory(signed, tls=pki.server_context()) as url:
        config["stream-url"] = url
        assert url.startswith("https://127.0.0.1:")
        failure = failed_plan(ctx, config)
        results, out = plan(ctx, {**config, "ca-certificates": pki.ca_pem})

    assert failure.message.startswith(
        f"cannot read agent stream: cannot fetch {url}{INDEX}: TLS certificate verify failed"
    )
    assert "add that CA to ca-certificates" in failure.message
    assert isinstance(status_message(failure), ops.BlockedStatus)
    assert results["verified"] == "true"
    assert out.unit_status == ops.ActiveStatus("agent 3.6.8; upgrade target 3.7.0")


def test_juju_proxy_settings_are_used(
    ctx, signed: Path, gpg_keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = {"signing-keys": gpg_keys.alice.armoured}
    with running_proxy() as proxy, serve_directory(signed) as url:
        config["stream-url"] = url
        monkeypatch.setenv("JUJU_CHARM_HTTP_PROXY", proxy.url)
        monkeypatch.setenv("JUJU_CHARM_NO_PROXY", "localhost,::1")
        results, _ = plan(ctx, config)
        assert results["verified"] == "true"
        assert proxy.urls == [f"{url}{INDEX}", f"{url}{PRODUCTS}"]

        seen = len(proxy.urls)
        monkeypatch.setenv("JUJU_CHARM_NO_PROXY", "localhost,127.0.0.1,::1")
        plan(ctx, config)
        assert proxy.urls[seen:] == []


def test_bad_proxy_setting_blocks_naming_the_model_setting(
    ctx, signed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUJU_CHARM_HTTPS_PROXY", "socks5://proxy:1080")
    with serve_directory(signed) as url:
        failure = failed_plan(ctx, {"stream-url": url})

    assert "JUJU_CHARM_HTTPS_PROXY: unsupported proxy URL 'socks5://proxy:1080'" in (
        failure.message
    )
    assert "juju model-config juju-https-proxy" in failure.message
    assert isinstance(status_message(failure), ops.BlockedStatus)


def test_a_proxy_setting_that_cannot_be_split_blocks_naming_the_model_setting(
    ctx, signed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUJU_CHARM_HTTP_PROXY", "http://[::1")
    with serve_directory(signed) as url:
        failure = failed_plan(ctx, {"stream-url": url})

    assert "JUJU_CHARM_HTTP_PROXY: invalid proxy URL 'http://[::1'" in failure.message
    assert "juju model-config juju-http-proxy" in failure.message
    assert isinstance(status_message(failure), ops.BlockedStatus)


def test_unreachable_source_is_transient_and_retried_on_update_status(
    ctx, signed: Path, gpg_keys: Keys, tmp_path: Path
) -> None:
    with serve_directory(tmp_path) as gone:
        pass  # nothing listens on this port any more
    config = {"stream-url": gone, "signing-keys": gpg_keys.alice.armoured}

    failure = failed_plan(ctx, config)
    assert failure.message.startswith(
        f"cannot read agent stream: cannot fetch {gone}{INDEX}: gave up after 3 attempts; "
        "last failure: connection refused"
    )
    status = status_message(failure)
    assert isinstance(status, ops.MaintenanceStatus)

    with serve_directory(signed) as url:
        assert isinstance(failure.state, testing.State)
        out = ctx.run(ctx.on.update_status(), failure.state)
        assert isinstance(out.unit_status, ops.MaintenanceStatus)  # still the old URL
        out = ctx.run(ctx.on.config_changed(), state({**config, "stream-url": url}))
    # Healthy again: the unit serves its (still empty) mirror.
    assert isinstance(out.unit_status, ops.ActiveStatus)
    assert out.unit_status.message.startswith("serving no agents yet")


def test_update_status_costs_one_conditional_request_when_nothing_changed(
    ctx, signed: Path, gpg_keys: Keys
) -> None:
    log: list[tuple[str, int]] = []
    config = {"signing-keys": gpg_keys.alice.armoured}
    with serve_directory(signed, log=log) as url:
        config["stream-url"] = url
        out = ctx.run(ctx.on.config_changed(), state(config))
        assert [path for path, _ in log] == [INDEX, PRODUCTS]

        log.clear()
        out = ctx.run(ctx.on.update_status(), out)
        assert log == [(INDEX, 304)]
        # Healthy again: the unit serves its (still empty) mirror.
        assert isinstance(out.unit_status, ops.ActiveStatus)
        assert out.unit_status.message.startswith("serving no agents yet")

        # The publisher re-signs with a later date: the whole stream is read again.
        index = signed / INDEX.lstrip("/")
        index.write_bytes(gpg_keys.signer.clearsign(b'{"format": "index:1.0"}', gpg_keys.alice))
        stat = index.stat()
        os.utime(index, (stat.st_atime, stat.st_mtime + 10))
        log.clear()
        out = ctx.run(ctx.on.update_status(), out)

    assert log == [(INDEX, 200), (INDEX, 200)]
    assert isinstance(out.unit_status, ops.BlockedStatus)
    assert "'index' must be an object" in out.unit_status.message
