"""Serving the staged mirror with nginx: the site file, and nginx as a system service.

The site serves only the ``tools/`` tree of the storage root, read-only: GET and HEAD (anything
else is answered 405), no directory listings, nothing outside ``/tools/`` (404), no symbolic
links, and never the sync engine's hidden staging files, ``*.partial`` downloads or its lock.
nginx's static module gives Content-Length, ETag/Last-Modified and Range requests (206).

:func:`render_site` is pure. :func:`install_site` writes the file where the Debian/Ubuntu package
reads it and checks the whole configuration with ``nginx -t`` before keeping it.
:class:`NginxService` installs the package from the Ubuntu archive with charmlibs-apt and drives
the service with charmlibs-systemd; those libraries are imported only when used, so the rest of
this module (and the ``upgrader`` package) imports without them.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import shutil
import subprocess
from pathlib import Path

from .errors import InvalidInputError, UpgraderError
from .files import replace_file

DEFAULT_PORT = 8080
SERVED_DIR = "tools"
"""The only directory under the storage root that is served: ``agent-metadata-url`` is
``http://ADDRESS:PORT/tools``."""
SITE_NAME = "upgrader"
NGINX_BINARY = "/usr/sbin/nginx"
NGINX_PACKAGE = "nginx"
UNIT_PACKAGES = (NGINX_PACKAGE, "gnupg", "gpgv")
"""The Ubuntu packages the unit installs: nginx serves the mirror; gnupg's ``gpg`` turns the
signing keys into a keyring and ``gpgv`` checks signed metadata (:mod:`upgrader.signing`). An
air-gapped site's apt mirror must hold all three."""
NGINX_UNIT = "nginx.service"
LOG_DIR = Path("/var/log/nginx")

# Characters that cannot appear in a path written into the site file: quotes and backslashes
# would end or escape the quoted string, ``$`` starts an nginx variable, and control characters
# (newlines) would start a new directive.
_UNSAFE_PATH = re.compile(r'["\\$\x00-\x1f\x7f]')

# Names under tools/ that are never served, whatever the sync engine leaves there: hidden names
# (its lock and temporary files start with a dot), downloads in progress and lock files.
_PRIVATE_NAMES = r"(/\.|\.partial(/|$)|\.lock$|\.tmp$)"


class ServingError(UpgraderError):
    """nginx could not be installed, configured or controlled; the message says what failed."""


@dataclasses.dataclass(frozen=True)
class Site:
    """What the nginx site serves and where it listens.

    Attributes:
        root: the storage root; only its ``tools/`` directory is served.
        port: the TCP port to listen on.
        address: the IP address to listen on; empty for every IPv4 address.
        access_log: the access log file.
        error_log: the error log file.

    Raises:
        InvalidInputError: (a ValueError) naming the bad value and the accepted form.
    """

    root: Path
    port: int = DEFAULT_PORT
    address: str = ""
    access_log: Path = LOG_DIR / f"{SITE_NAME}-access.log"
    error_log: Path = LOG_DIR / f"{SITE_NAME}-error.log"

    def __post_init__(self) -> None:
        """Check every field, so nothing malformed reaches the site file."""
        check_port(self.port)
        if self.address:
            _check_address(self.address)
        for name in ("root", "access_log", "error_log"):
            _check_path(getattr(self, name), name.replace("_", "-"))

    @property
    def listen(self) -> str:
        """The ``listen`` directive's argument: ``8080``, ``127.0.0.1:8080`` or ``[::1]:8080``."""
        if not self.address:
            return str(self.port)
        if ipaddress.ip_address(self.address).version == 6:
            return f"[{self.address}]:{self.port}"
        return f"{self.address}:{self.port}"


def check_port(port: object, *, option: str = "port") -> int:
    """Validate a TCP port number (1 to 65535).

    Raises:
        InvalidInputError: naming the option and the accepted range.
    """
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise InvalidInputError(f"invalid {option} {port!r}: use a TCP port from 1 to 65535")
    return port


def _check_address(address: str, *, option: str = "address") -> str:
    """Validate an IPv4 or IPv6 address to listen on.

    Raises:
        InvalidInputError: naming the option and the accepted form.
    """
    try:
        ipaddress.ip_address(address)
    except ValueError:
        raise InvalidInputError(
            f"invalid {option} {address!r}: use an IP address such as 10.1.2.3 or ::1"
        ) from None
    return address


def _check_path(path: object, option: str) -> None:
    if (
        not isinstance(path, Path)
        or not path.is_absolute()
        or ".." in path.parts
        or _UNSAFE_PATH.search(str(path))
    ):
        raise InvalidInputError(
            f"invalid {option} {str(path)!r}: use an absolute path without '..', quotes, "
            "backslashes, '$' or control characters"
        )


def render_site(site: Site) -> str:
    """The nginx ``server`` block serving ``<root>/tools`` read-only.

    The text is the whole site file: the charm writes it unchanged into ``sites-available``.
    """
    return f"""\
# Written by the upgrader charm: the unit's Juju agent mirror. Local changes are overwritten.
server {{
    listen {site.listen};
    server_name _;
    root "{site.root}";
    access_log "{site.access_log}";
    error_log "{site.error_log}";

    server_tokens off;
    autoindex off;
    sendfile on;
    # No tcp_nopush: measured here, it stalled about half the responses on a reused
    # connection by ~40 ms (benchmarks/README.md), and a follower reuses its connection.
    tcp_nopush off;
    # Never follow a symbolic link inside the mirror, so nothing outside it can be reached.
    disable_symlinks on from=$document_root;

    # Read-only: GET and HEAD only.
    add_header Allow "GET, HEAD" always;
    if ($request_method !~ ^(GET|HEAD)$) {{
        return 405;
    }}

    # Only the mirror: everything outside /{SERVED_DIR}/ is not found.
    location / {{
        return 404;
    }}

    location /{SERVED_DIR}/ {{
        # The sync engine's hidden, partial and lock files are never served.
        location ~ "{_PRIVATE_NAMES}" {{
            return 404;
        }}
        # Files only: a directory is not found (no listing, no index page).
        try_files $uri =404;
    }}
}}
"""


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where the Debian/Ubuntu nginx package reads its configuration.

    Attributes:
        conf_dir: nginx's configuration directory (``/etc/nginx``).
        site_name: the name of the charm's site file.
    """

    conf_dir: Path = Path("/etc/nginx")
    site_name: str = SITE_NAME

    @property
    def main_config(self) -> Path:
        """The main configuration file, which includes ``sites-enabled/*``."""
        return self.conf_dir / "nginx.conf"

    @property
    def available(self) -> Path:
        """The charm's site file."""
        return self.conf_dir / "sites-available" / self.site_name

    @property
    def enabled(self) -> Path:
        """The link that enables the charm's site."""
        return self.conf_dir / "sites-enabled" / self.site_name

    @property
    def default_site(self) -> Path:
        """The package's default site (port 80), which the charm disables."""
        return self.conf_dir / "sites-enabled" / "default"


def check_config(layout: Layout, *, nginx: str = NGINX_BINARY) -> None:
    """Run ``nginx -t`` over the whole configuration.

    Raises:
        ServingError: with nginx's own explanation when the configuration is invalid.
    """
    try:
        proc = subprocess.run(
            [nginx, "-t", "-q", "-c", str(layout.main_config)],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ServingError(f"cannot run {nginx} -t: {exc}") from None
    if proc.returncode != 0:
        detail = " ".join((proc.stderr or proc.stdout).split()) or f"exit {proc.returncode}"
        raise ServingError(f"nginx refused the configuration: {detail}")


def install_site(text: str, layout: Layout, *, nginx: str = NGINX_BINARY) -> bool:
    """Write and enable the site, disable the default site, and check the result with nginx.

    When ``nginx -t`` refuses the new configuration, the previous site file and links are put
    back as they were and the error is raised.

    Returns:
        Whether anything changed (so the service needs a reload).

    Raises:
        ServingError: the configuration was refused or the files could not be written.
    """
    try:
        previous = _read(layout.available)
        enabled = _readlink(layout.enabled) == str(layout.available)
        default_link = _readlink(layout.default_site)
        if previous == text and enabled and default_link is None:
            return False
        replace_file(layout.available, text.encode())
        if not enabled:
            layout.enabled.parent.mkdir(parents=True, exist_ok=True)
            _replace_link(layout.enabled, layout.available)
        if default_link is not None:
            layout.default_site.unlink()
    except OSError as exc:
        raise ServingError(f"cannot write the nginx site {layout.available}: {exc}") from None
    try:
        check_config(layout, nginx=nginx)
    except ServingError:
        _restore(layout, previous, enabled, default_link)
        raise
    return True


def remove_site(layout: Layout) -> bool:
    """Disable and delete the charm's site; returns whether there was one.

    Raises:
        ServingError: a file cannot be removed.
    """
    removed = False
    for path in (layout.enabled, layout.available):
        if path.is_symlink() or path.exists():
            try:
                path.unlink()
            except OSError as exc:
                raise ServingError(f"cannot remove the nginx site {path}: {exc}") from None
            removed = True
    return removed


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


def _readlink(path: Path) -> str | None:
    return os.readlink(path) if path.is_symlink() else None


def _replace_link(link: Path, target: Path) -> None:
    tmp = link.with_name(f".{link.name}.new")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target)
    os.replace(tmp, link)


def _restore(
    layout: Layout, previous: str | None, enabled: bool, default_link: str | None
) -> None:
    if previous is None:
        layout.available.unlink(missing_ok=True)
    else:
        replace_file(layout.available, previous.encode())
    if not enabled:
        layout.enabled.unlink(missing_ok=True)
    if default_link is not None and not layout.default_site.is_symlink():
        layout.default_site.symlink_to(default_link)


class NginxService:
    """nginx as the unit's web server: installed from the Ubuntu archive, run by systemd.

    GnuPG comes with it (:data:`UNIT_PACKAGES`): the unit needs it to check signed metadata.

    Every method raises :class:`ServingError` with a message naming what failed.
    """

    def __init__(self, layout: Layout | None = None) -> None:
        """Manage nginx configured under ``layout`` (``/etc/nginx`` by default)."""
        self.layout = layout or Layout()

    def installed(self) -> bool:
        """Whether nginx, ``gpg`` and ``gpgv`` are all present (see :data:`UNIT_PACKAGES`).

        A unit refreshed from a charm that installed only nginx lacks GnuPG until the next
        :meth:`install`.
        """
        nginx = Path(NGINX_BINARY).exists() or shutil.which("nginx") is not None
        return nginx and all(shutil.which(tool) for tool in ("gpg", "gpgv"))

    def install(self) -> None:
        """Install :data:`UNIT_PACKAGES` from the archive (refreshing the package lists first)."""
        from charmlibs import apt  # imported here: optional at import time

        try:
            apt.update()
            apt.add_package(list(UNIT_PACKAGES))
        except (apt.Error, subprocess.CalledProcessError, OSError) as exc:
            packages = ", ".join(UNIT_PACKAGES)
            raise ServingError(f"cannot install {packages} from the archive: {exc}") from None

    def serve(self, site: Site) -> bool:
        """Install the site and make sure nginx runs with it; returns whether it changed."""
        changed = install_site(render_site(site), self.layout)
        self._systemctl("enable", NGINX_UNIT)
        if not self.running():
            self._systemctl("start", NGINX_UNIT)
        elif changed:
            self._systemctl("reload", NGINX_UNIT)
        return changed

    def stop_serving(self) -> None:
        """Remove the site, so the mirror is no longer served; nginx keeps running."""
        if remove_site(self.layout) and self.running():
            self._systemctl("reload", NGINX_UNIT)

    def stop(self) -> None:
        """Remove the site, then stop nginx and keep it from starting at boot."""
        remove_site(self.layout)
        if self.installed():
            self._systemctl("stop", NGINX_UNIT)
            self._systemctl("disable", NGINX_UNIT)

    def serving(self) -> bool:
        """Whether the charm's site is enabled and nginx runs: the mirror is being served."""
        return self.layout.enabled.is_symlink() and self.installed() and self.running()

    def running(self) -> bool:
        """Whether the nginx service is active."""
        from charmlibs import systemd  # imported here: optional at import time

        return systemd.service_running(NGINX_UNIT)

    def _systemctl(self, verb: str, unit: str) -> None:
        from charmlibs import systemd  # imported here: optional at import time

        action = {
            "enable": systemd.service_enable,
            "disable": systemd.service_disable,
            "start": systemd.service_start,
            "stop": systemd.service_stop,
            "reload": lambda name: systemd.service_reload(name, restart_on_failure=True),
        }[verb]
        try:
            action(unit)
        except systemd.SystemdError as exc:
            raise ServingError(f"cannot {verb} {unit}: {exc}") from None
