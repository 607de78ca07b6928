"""The vcsim of world.py, started once per session, shaped through the vSphere API and loaded with the series."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from pyVim.connect import Disconnect, SmartConnect
from pyVim.task import WaitForTask
from pyVmomi import vim

from cloudmeter.collectors.vmware import VmwareConfig, VsphereCollector
from tests.vmware import world
from tests.vmware.vcsim_server import VcsimServer, running


@dataclass(frozen=True)
class World:
    server: VcsimServer
    now: int  # epoch seconds: vCenter's clock and the collectors'
    morefs: dict[str, str]  # VM and host names -> managed object ids
    retired: str  # the destroyed VM's id

    def collector(self, clock: Callable[[], datetime] | None = None, **fields: Any) -> VsphereCollector:
        raw = {
            "host": self.server.host,
            "port": self.server.port,
            "username": world.USERNAME,
            "password": world.PASSWORD,
            "verify_tls": False,
            **fields,
        }
        moment = datetime.fromtimestamp(self.now, UTC)
        return VsphereCollector("vc", VmwareConfig.model_validate(raw), clock=clock or (lambda: moment))


def connect(server: VcsimServer) -> Any:
    return SmartConnect(
        host=server.host, port=server.port, user=world.USERNAME, pwd=world.PASSWORD, disableSslCertValidation=True
    )


def by_name(content: Any, kind: type) -> dict[str, Any]:
    view = content.viewManager.CreateContainerView(content.rootFolder, [kind], True)
    try:
        return {obj.name: obj for obj in view.view}
    finally:
        view.Destroy()


def shape(server: VcsimServer) -> tuple[dict[str, str], str]:
    """world.py's changes through the API; the morefs by name and the destroyed VM's id."""
    instance = connect(server)
    try:
        content = instance.content
        vms, hosts = by_name(content, vim.VirtualMachine), by_name(content, vim.HostSystem)
        WaitForTask(vms[world.OFF_VM].PowerOffVM_Task())
        WaitForTask(hosts[world.MAINTENANCE_HOST].EnterMaintenanceMode_Task(timeout=0))
        standalone = hosts["DC0_H0"]
        datacenter = content.rootFolder.childEntity[0]
        spec = vim.vm.ConfigSpec(name="doomed", numCPUs=1, memoryMB=512, guestId="otherGuest",
                                 files=vim.vm.FileInfo(vmPathName="[LocalDS_0]"))  # fmt: skip
        task = datacenter.vmFolder.CreateVM_Task(config=spec, pool=standalone.parent.resourcePool, host=standalone)
        WaitForTask(task)
        doomed = task.info.result
        retired = doomed._moId
        WaitForTask(doomed.Destroy_Task())
        morefs = {name: vm._moId for name, vm in vms.items()} | {name: h._moId for name, h in hosts.items()}
        return morefs, retired
    finally:
        Disconnect(instance)


@pytest.fixture(scope="session")
def vsphere() -> Iterator[World]:
    with running(*world.FLAGS, username=world.USERNAME, password=world.PASSWORD) as server:
        morefs, retired = shape(server)
        now = math.ceil((time.time() + 60) / 3600) * 3600
        server.push(world.series(morefs, now), now=now)
        yield World(server, now, morefs, retired)
