"""The runbook: every command of every route, with its exact flags."""

from __future__ import annotations

import shlex

from upgrader.routes import HostedModel, plan_route
from upgrader.runbook import (
    NOTHING_TO_DO,
    ControllerInfo,
    Site,
    bootstrap_base,
    channel,
    charm_base_tag,
    default_offline_dir,
    new_controller_name,
    runbook,
)
from upgrader.versions import Version, parse

V = parse
STREAM = [V(v) for v in "2.9.50 2.9.52 2.9.53 3.1.8 3.5.6 3.5.7 3.6.10 3.6.11 3.6.12".split()]
URL = "http://10.1.2.3:8080/tools"
SYNC = "juju run upgrader/0 sync-binaries"
DIR = default_offline_dir(Version(3, 6, 12))


def keep_mirror(new: str) -> list[str]:
    """The lines that move the models' mirror to the new controller before the old one goes."""
    return [
        f"# {new} and its models read agent binaries from {URL}; before that mirror goes with "
        f"the old controller, serve one from {new} (e.g. deploy upgrader in {new}:controller and "
        f"import the same binaries) and point {new} at it:",
        f"juju model-config -m {new}:controller agent-metadata-url=<new mirror URL>",
        f"juju model-defaults -c {new} agent-metadata-url=<new mirror URL>",
    ]


def site(*staged: str, stream: str = "released", sync: str = SYNC) -> Site:
    return Site(URL, stream, frozenset(V(v) for v in staged), sync)


def steps(controller: str, target: str, *, site_: Site | None = None, **kwargs) -> list[str]:
    info = kwargs.pop("info", None)
    route = plan_route(V(controller), V(target), STREAM, **kwargs)
    return runbook(route, site_ if site_ is not None else site(), info)


def commands(lines: list[str]) -> list[str]:
    return [line for line in lines if not line.startswith("#")]


BOOTSTRAP_36 = [
    "# a new 3.6 controller; on a host with internet access, fetch what an offline bootstrap "
    "needs:",
    f"mkdir -p {DIR}",
    f"snap download juju --channel=3.6/stable --target-directory={DIR}",
    f"snap download juju-db --channel=4.4/stable --target-directory={DIR}",
    "juju download juju-controller --channel 3.6/stable --base ubuntu@24.04 --arch amd64 "
    f"--filepath {DIR}/juju-controller.charm",
    f"# carry {DIR} to the client host (same path), then install the 3.6 client there:",
    f"sudo snap ack {DIR}/juju_*.assert",
    f"sudo snap install {DIR}/juju_*.snap",
    "juju bootstrap <cloud> controller-3-6 --no-switch --bootstrap-base ubuntu@24.04 "
    f"--agent-version 3.6.12 --controller-charm-path {DIR}/juju-controller.charm "
    f"--db-snap {DIR}/juju-db_*.snap --db-snap-asserts {DIR}/juju-db_*.assert "
    f"--config agent-metadata-url={URL} --model-default agent-metadata-url={URL}",
    "# recreate users, clouds and credentials on controller-3-6 (migration needs them there):",
    "juju users --format yaml",
    "juju add-user -c controller-3-6 <user>",
    "# for each other cloud your models use:",
    "juju add-cloud -c controller-3-6 <cloud> <cloud.yaml>",
    "juju add-credential -c controller-3-6 <cloud> -f <credentials.yaml>",
    "# for each model `juju models` lists, other than controller, as <model>:",
    "juju migrate <model> controller-3-6",
    "# wait until `juju show-model controller-3-6:<model>` shows the migration done",
    "juju upgrade-model -m controller-3-6:<model> --agent-version 3.6.12 --dry-run",
    "juju upgrade-model -m controller-3-6:<model> --agent-version 3.6.12",
    "juju change-user-password -c controller-3-6 <user> --reset",
    "# send each user the `juju register` line it prints",
    *keep_mirror("controller-3-6"),
    "# the old controller can go once every model runs on controller-3-6",
]


def in_place(version: str) -> list[str]:
    return [
        f"juju model-config -m controller agent-metadata-url={URL}",
        f"juju model-defaults agent-metadata-url={URL}",
        f"juju upgrade-controller --agent-version {version} --dry-run",
        f"juju upgrade-controller --agent-version {version}",
        f"# wait until `juju status -m controller` shows every controller agent at {version}",
        "# then for each model `juju models` lists, other than controller, as <model>:",
        f"juju upgrade-model -m <model> --agent-version {version} --dry-run",
        f"juju upgrade-model -m <model> --agent-version {version}",
    ]


# The worked routes, as a charm unit plans them (no model list) ----------------------------


def test_3_6_10_to_3_6_12_in_place() -> None:
    assert steps("3.6.10", "3.6.12") == [SYNC, *in_place("3.6.12")]


def test_3_6_10_to_3_6_12_already_staged() -> None:
    assert steps("3.6.10", "3.6.12", site_=site("3.6.12")) == in_place("3.6.12")


def test_3_5_6_to_3_6_12_patch_then_new_controller() -> None:
    assert steps("3.5.6", "3.6.12") == [SYNC, *in_place("3.5.7"), *BOOTSTRAP_36]


def test_2_9_40_to_3_6_12_two_hops() -> None:
    assert steps("2.9.40", "3.6.12") == [SYNC, *in_place("2.9.53"), *BOOTSTRAP_36]


def test_2_9_52_to_2_9_53_in_place() -> None:
    assert steps("2.9.52", "2.9.53") == [SYNC, *in_place("2.9.53")]


def test_3_1_8_to_3_6_12_new_controller_only() -> None:
    assert steps("3.1.8", "3.6.12") == [SYNC, *BOOTSTRAP_36]


def test_up_to_date_without_models() -> None:
    assert steps("3.6.12", "3.6.12") == [NOTHING_TO_DO]


# Staging ----------------------------------------------------------------------------------


def test_series_placeholder_gives_one_sync_per_major_minor() -> None:
    sync = "juju run upgrader/1 sync-binaries version={series}"
    lines = steps("3.5.6", "3.6.12", site_=site(sync=sync))
    assert lines[:2] == [
        "juju run upgrader/1 sync-binaries version=3.5",
        "juju run upgrader/1 sync-binaries version=3.6",
    ]
    staged = steps("3.5.6", "3.6.12", site_=site("3.5.7", sync=sync))
    assert staged[0] == "juju run upgrader/1 sync-binaries version=3.6"


def test_version_placeholder_and_after_sync_lines() -> None:
    custom = Site(URL, "released", frozenset(), "stage {version}", ("serve it",))
    lines = steps("3.5.6", "3.6.12", site_=custom)
    assert lines[:3] == ["stage 3.5.7", "stage 3.6.12", "serve it"]


def test_every_hop_staged_means_no_staging_step() -> None:
    lines = steps("3.5.6", "3.6.12", site_=site("3.5.7", "3.6.12"))
    assert lines[0] == f"juju model-config -m controller agent-metadata-url={URL}"


def test_without_a_sync_command_the_step_says_what_to_stage() -> None:
    lines = steps("3.5.6", "3.6.12", site_=site(sync=""))
    assert lines[0] == "# stage the agent binaries of 3.5.7, 3.6.12 for every architecture in use"


def test_without_a_site_there_is_no_staging_or_pointing() -> None:
    route = plan_route(V("3.6.10"), V("3.6.12"), STREAM)
    lines = runbook(route)
    assert lines[0] == "juju upgrade-controller --agent-version 3.6.12 --dry-run"
    assert not any("model-config" in line for line in lines)


# A stream other than released --------------------------------------------------------------


def test_proposed_stream_sets_agent_stream_everywhere() -> None:
    lines = steps("3.5.6", "3.6.12", site_=site(stream="proposed"))
    assert lines[1] == (
        f"juju model-config -m controller agent-metadata-url={URL} agent-stream=proposed"
    )
    for line in commands(lines):
        if line.startswith(("juju upgrade-controller", "juju upgrade-model")):
            assert "--agent-stream proposed" in line, line
    bootstrap = next(line for line in lines if line.startswith("juju bootstrap"))
    assert bootstrap.endswith(
        f"--config agent-metadata-url={URL} --model-default agent-metadata-url={URL} "
        "--config agent-stream=proposed --model-default agent-stream=proposed"
    )
    assert "juju upgrade-controller --agent-version 3.5.7 --agent-stream proposed --dry-run" in (
        lines
    )


# What the client tool knows: names, models, clouds -----------------------------------------


MODELS = (
    HostedModel("admin/prod", V("3.5.6"), cloud="maas"),
    HostedModel("alice/dev", V("3.5.7"), cloud="openstack"),
)
INFO = ControllerInfo(name="prod", cloud="maas/default", architectures=("arm64", "amd64"))


def test_known_models_get_real_names_and_skip_the_up_to_date() -> None:
    lines = steps("3.5.6", "3.6.12", models=MODELS, info=INFO)
    in_place_part = lines[: lines.index(next(x for x in lines if x.startswith("# a new")))]
    assert in_place_part == [
        SYNC,
        f"juju model-config -m prod:controller agent-metadata-url={URL}",
        f"juju model-defaults -c prod agent-metadata-url={URL}",
        "juju upgrade-controller -c prod --agent-version 3.5.7 --dry-run",
        "juju upgrade-controller -c prod --agent-version 3.5.7",
        "# wait until `juju status -m prod:controller` shows every controller agent at 3.5.7",
        "juju upgrade-model -m prod:admin/prod --agent-version 3.5.7 --dry-run",
        "juju upgrade-model -m prod:admin/prod --agent-version 3.5.7",
    ]
    tail = lines[len(in_place_part) :]
    assert (
        "juju download juju-controller --channel 3.6/stable --base ubuntu@24.04 --arch arm64 "
        f"--filepath {DIR}/juju-controller.charm"
    ) in tail
    assert tail[tail.index("juju users -c prod --format yaml") :] == [
        "juju users -c prod --format yaml",
        "juju add-user -c prod-3-6 <user>",
        "juju add-cloud -c prod-3-6 openstack <cloud.yaml>",
        "juju add-credential -c prod-3-6 openstack -f <credentials.yaml>",
        "juju switch prod",
        "juju migrate admin/prod prod-3-6",
        "# wait until `juju show-model prod-3-6:admin/prod` shows the migration done",
        "juju upgrade-model -m prod-3-6:admin/prod --agent-version 3.6.12 --dry-run",
        "juju upgrade-model -m prod-3-6:admin/prod --agent-version 3.6.12",
        "juju migrate alice/dev prod-3-6",
        "# wait until `juju show-model prod-3-6:alice/dev` shows the migration done",
        "juju upgrade-model -m prod-3-6:alice/dev --agent-version 3.6.12 --dry-run",
        "juju upgrade-model -m prod-3-6:alice/dev --agent-version 3.6.12",
        "juju change-user-password -c prod-3-6 <user> --reset",
        "# send each user the `juju register` line it prints",
        *keep_mirror("prod-3-6"),
        "# the old controller can go once every model runs on prod-3-6",
    ]
    bootstrap = next(line for line in tail if line.startswith("juju bootstrap "))
    assert bootstrap.startswith("juju bootstrap maas/default prod-3-6 --no-switch ")


def test_up_to_date_controller_upgrades_the_models_behind_it() -> None:
    models = (HostedModel("admin/prod", V("3.6.10")), HostedModel("admin/ok", V("3.6.12")))
    lines = steps("3.6.12", "3.6.12", models=models, info=INFO)
    assert lines == [
        SYNC,
        f"juju model-config -m prod:controller agent-metadata-url={URL}",
        f"juju model-defaults -c prod agent-metadata-url={URL}",
        "juju upgrade-model -m prod:admin/prod --agent-version 3.6.12 --dry-run",
        "juju upgrade-model -m prod:admin/prod --agent-version 3.6.12",
    ]


def test_a_2_9_model_below_the_minimum_goes_to_the_controller_version_first() -> None:
    models = (HostedModel("admin/old", V("2.9.40")), HostedModel("admin/new", V("2.9.53")))
    lines = steps("2.9.53", "3.6.12", models=models, info=INFO)
    assert lines[:5] == [
        SYNC,
        f"juju model-config -m prod:controller agent-metadata-url={URL}",
        f"juju model-defaults -c prod agent-metadata-url={URL}",
        "juju upgrade-model -m prod:admin/old --agent-version 2.9.53 --dry-run",
        "juju upgrade-model -m prod:admin/old --agent-version 2.9.53",
    ]


def test_explicit_offline_dir_new_name_and_base() -> None:
    info = ControllerInfo(offline_dir="/srv/offline", new_name="next", base="ubuntu@22.04")
    lines = steps("3.5.7", "3.6.12", info=info)
    assert "snap download juju --channel=3.6/stable --target-directory=/srv/offline" in lines
    bootstrap = next(line for line in lines if line.startswith("juju bootstrap"))
    assert bootstrap.startswith(
        "juju bootstrap <cloud> next --no-switch --bootstrap-base ubuntu@22.04 "
        "--agent-version 3.6.12 --controller-charm-path /srv/offline/juju-controller.charm "
    )


# Kubernetes -------------------------------------------------------------------------------


def test_kubernetes_in_place_copies_the_operator_image() -> None:
    info = ControllerInfo(name="k8s", image_repo="registry.local:5000/juju")
    lines = steps("3.6.10", "3.6.12", kubernetes=True, info=info)
    assert lines == [
        "skopeo copy --all docker://docker.io/jujusolutions/jujud-operator:3.6.12 "
        "docker://registry.local:5000/juju/jujud-operator:3.6.12",
        "juju controller-config -c k8s caas-image-repo",
        "# the registry path it shows must be registry.local:5000/juju",
        "juju upgrade-controller -c k8s --agent-version 3.6.12 --dry-run",
        "juju upgrade-controller -c k8s --agent-version 3.6.12",
        "# wait until `juju status -m k8s:controller` shows every controller agent at 3.6.12",
        "# then for each model `juju models` lists, other than controller, as <model>:",
        "juju upgrade-model -m k8s:<model> --agent-version 3.6.12 --dry-run",
        "juju upgrade-model -m k8s:<model> --agent-version 3.6.12",
    ]


def test_kubernetes_new_controller_images_and_bootstrap() -> None:
    info = ControllerInfo(
        name="k8s", cloud="microk8s", charm_bases=("ubuntu@22.04", "ubuntu@24.04/candidate")
    )
    lines = steps("3.5.7", "3.6.12", kubernetes=True, info=info)
    repo = "<registry>/jujusolutions"
    assert lines[:4] == [
        f"skopeo copy --all docker://docker.io/jujusolutions/jujud-operator:3.6.12 "
        f"docker://{repo}/jujud-operator:3.6.12",
        f"skopeo copy --all docker://docker.io/jujusolutions/juju-db:4.4 docker://{repo}/juju-db:4.4",
        "skopeo copy --all docker://docker.io/jujusolutions/charm-base:ubuntu-22.04 "
        f"docker://{repo}/charm-base:ubuntu-22.04",
        "skopeo copy --all docker://docker.io/jujusolutions/charm-base:ubuntu-24.04-candidate "
        f"docker://{repo}/charm-base:ubuntu-24.04-candidate",
    ]
    assert not any(
        "juju-db --channel" in line or "--controller-charm-path" in line for line in lines
    )
    assert not any("agent-metadata-url" in line for line in lines)
    assert (
        f"juju bootstrap microk8s k8s-3-6 --no-switch --agent-version 3.6.12 "
        f"--config caas-image-repo={repo}"
    ) in lines


def test_kubernetes_without_known_bases_shows_an_example() -> None:
    lines = steps("3.5.7", "3.6.12", kubernetes=True)
    assert any(line.startswith("# and each charm-base image your charms use") for line in lines)


# Helpers ----------------------------------------------------------------------------------


def test_helpers() -> None:
    assert charm_base_tag("ubuntu@22.04") == "ubuntu-22.04"
    assert charm_base_tag("ubuntu@22.04/stable") == "ubuntu-22.04"
    assert charm_base_tag("ubuntu@24.04/edge") == "ubuntu-24.04-edge"
    assert default_offline_dir(Version(3, 6, 12)) == "/var/tmp/juju-3.6.12"  # noqa: S108
    assert new_controller_name(Version(3, 6, 12), ControllerInfo()) == "controller-3-6"
    assert new_controller_name(Version(3, 6, 12), ControllerInfo(name="prod")) == "prod-3-6"
    assert new_controller_name(Version(3, 6, 12), ControllerInfo(new_name="x")) == "x"


PATH_FLAGS = ("--target-directory", "--filepath", "--controller-charm-path", "--db-snap",
              "--db-snap-asserts")  # fmt: skip


def test_every_path_in_every_command_is_absolute() -> None:
    seen = 0
    for controller in ("2.9.40", "3.1.8", "3.5.6", "3.6.10"):
        for line in commands(steps(controller, "3.6.12")):
            words = line.split()
            for i, word in enumerate(words):
                flag, _, value = word.partition("=")
                if flag in PATH_FLAGS:
                    path = value or words[i + 1]
                elif words[:2] in (["mkdir", "-p"], ["sudo", "snap"]) and i == len(words) - 1:
                    path = word
                else:
                    continue
                seen += 1
                assert path.startswith("/"), (line, word)
    assert seen == 27  # 9 per new-controller route, 3 of them


def test_a_pre_release_target_comes_from_its_risk_channel() -> None:
    assert [channel(V(v)) for v in ("3.6.12", "3.7-beta1", "3.7-rc2", "3.7-dev3")] == [
        "3.6/stable",
        "3.7/beta",
        "3.7/candidate",
        "3.7/edge",
    ]
    lines = runbook(plan_route(V("3.6.12"), V("3.7-beta1"), [*STREAM, V("3.7-beta1")]), site())
    assert any(line.startswith("snap download juju --channel=3.7/beta ") for line in lines)
    assert any("juju download juju-controller --channel 3.7/beta " in line for line in lines)


def test_a_target_before_3_6_bootstraps_on_its_own_default_lts() -> None:
    assert (bootstrap_base(V("3.6.12")), bootstrap_base(V("3.5.7"))) == (
        "ubuntu@24.04",
        "ubuntu@22.04",
    )
    lines = steps("3.1.8", "3.5.7")
    bootstrap = next(line for line in lines if line.startswith("juju bootstrap "))
    assert " --bootstrap-base ubuntu@22.04 " in bootstrap
    assert any(" --base ubuntu@22.04 " in line for line in lines if "juju download" in line)


def _shell_words(line: str) -> list[str]:
    """The words a shell splits ``line`` into, with ``;``, ``&``, ``|``, ``(`` apart."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    return list(lexer)


def test_the_operators_url_and_directory_stay_one_shell_word() -> None:
    url = "http://mirror.site/tools?a=1&b=$(id)"
    directory = "/srv/off line;touch x"
    info = ControllerInfo(offline_dir=directory)
    lines = steps("3.5.6", "3.6.12", site_=Site(url, "released", frozenset(), SYNC), info=info)
    words = [word for line in commands(lines) for word in _shell_words(line)]
    assert not {";", "&", "|", "(", ")", "$(id)"} & set(words)
    assert words.count(f"agent-metadata-url={url}") == 4
    assert f"--target-directory={directory}" in words
    assert f"{directory}/juju-controller.charm" in words
    assert f"sudo snap ack '{directory}'/juju_*.assert" in lines
    assert f"juju model-defaults agent-metadata-url='{url}'" in lines


def test_an_ipv6_mirror_url_is_quoted_against_the_shells_globbing() -> None:
    # zsh refuses an unmatched [..] pattern ("no matches found"); bash may expand one.
    url = "http://[fd00::5]:8080/tools"
    lines = steps("3.6.10", "3.6.12", site_=Site(url, "released", frozenset(), SYNC))
    assert f"juju model-config -m controller agent-metadata-url='{url}'" in lines
