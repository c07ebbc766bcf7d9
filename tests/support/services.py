"""Stand-ins for the OS services the charm drives (apt, systemd), for Scenario tests.

nginx and the background job are system services a unit test cannot own, so charm tests replace
``charm``'s service classes with these. They keep the same interface and record every call in
:data:`CALLS`, in order, as ``(service, method, argument)``; the site a fake nginx serves and the
unit file a fake job service holds are kept so tests can check them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from upgrader import nginx
from upgrader.syncjob import JobError

CALLS: list[tuple[str, str, Any]] = []


class FakeNginx:
    """Records what the charm asks of nginx; ``installed`` and failures are set by tests."""

    installed_now = True
    fail_with: str = ""
    served: nginx.Site | None = None
    rendered: str = ""

    def __init__(self, layout: nginx.Layout | None = None) -> None:
        self.layout = layout or nginx.Layout()

    @classmethod
    def reset(cls) -> None:
        cls.installed_now = True
        cls.fail_with = ""
        cls.served = None
        cls.rendered = ""

    def installed(self) -> bool:
        return FakeNginx.installed_now

    def install(self) -> None:
        CALLS.append(("nginx", "install", None))
        if FakeNginx.fail_with:
            raise nginx.ServingError(FakeNginx.fail_with)
        FakeNginx.installed_now = True

    def serve(self, site: nginx.Site) -> bool:
        CALLS.append(("nginx", "serve", site))
        if FakeNginx.fail_with:
            raise nginx.ServingError(FakeNginx.fail_with)
        changed = FakeNginx.served != site
        FakeNginx.served = site
        FakeNginx.rendered = nginx.render_site(site)
        return changed

    def serving(self) -> bool:
        return FakeNginx.served is not None

    def stop_serving(self) -> None:
        CALLS.append(("nginx", "stop_serving", None))
        FakeNginx.served = None

    def stop(self) -> None:
        CALLS.append(("nginx", "stop", None))
        FakeNginx.served = None


class FakeJobService:
    """Records what the charm asks of the background job's systemd unit."""

    units: dict[str, str] = {}
    running_now: set[str] = set()
    fail_with: str = ""

    def __init__(self, name: str, unit_dir: Path = Path("/etc/systemd/system")) -> None:
        self.name = name

    @classmethod
    def reset(cls) -> None:
        cls.units = {}
        cls.running_now = set()
        cls.fail_with = ""

    def install(self, text: str) -> bool:
        CALLS.append(("job", "install", self.name))
        changed = FakeJobService.units.get(self.name) != text
        FakeJobService.units[self.name] = text
        return changed

    def start(self) -> None:
        CALLS.append(("job", "start", self.name))
        if FakeJobService.fail_with:
            raise JobError(FakeJobService.fail_with)
        FakeJobService.running_now.add(self.name)

    def running(self) -> bool:
        return self.name in FakeJobService.running_now

    def stop(self) -> None:
        CALLS.append(("job", "stop", self.name))
        FakeJobService.running_now.discard(self.name)

    def remove(self) -> None:
        if self.name in FakeJobService.units:
            CALLS.append(("job", "remove", self.name))
        FakeJobService.units.pop(self.name, None)
        FakeJobService.running_now.discard(self.name)


def reset() -> None:
    """Forget every call and state (a fresh machine)."""
    CALLS.clear()
    FakeNginx.reset()
    FakeJobService.reset()
