"""Boot images for tests: the installed Debian kernel, and initrds built around a test's
``/init``.

A test's ``/init`` is best written with ``script_init(body)``: it sources the shipped
discovery script as a library (``/lib/contractor/init.sh``), so ``body`` runs after
``bring_up`` (mounts, modules, DHCP; ``$mac`` is the NIC that got a lease) and before
``finish`` (power off), and may use its functions: ``arg NAME`` (a kernel argument),
``endpoint`` (``contractor.endpoint=``, else the DHCP server, port 8069), ``say``,
``report``, ``post``. For example, a machine that fetches its configuration and signals
completion, as a provisioning image does::

    script_init('''
        uuid=$(arg contractor.uuid)
        wget -q -O /tmp/config "http://$(endpoint)/config/$uuid" && say "config: $(cat /tmp/config)"
        wget -q -O - --post-data '{"status": "done"}' "http://$(endpoint)/signal/$uuid"
    ''')

(busybox-static 1.35's ``wget -T`` crashes: bound it with ``timeout 20 wget ...``.)
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from contractor.bootimage import (
    BootImage,
    BootImageError,
    Kernel,
    build_initrd,
    discovery_init,
    find_kernel,
)

LIBRARY = "lib/contractor/init.sh"


def installed_kernel() -> Kernel:
    """The kernel in /boot, or a skip outside CI (scripts/test installs
    linux-image-cloud-amd64 when /boot has none)."""
    try:
        return find_kernel()
    except BootImageError as error:
        if os.environ.get("CI"):
            pytest.fail(str(error))
        pytest.skip(str(error))


def script_init(body: str) -> str:
    """An ``/init``: bring up the machine, run ``body`` (shell), power off."""
    return (
        "#!/bin/sh\n"
        f"CONTRACTOR_INIT_LIB=1 . /{LIBRARY}\n"
        "bring_up\n"
        f"{textwrap.dedent(body).strip()}\n"
        "finish\n"
    )


def initrd_image(directory: Path, init: str, *, name: str = "initrd") -> BootImage:
    """``directory/vmlinuz`` (a link to the installed kernel) and ``directory/<name>``, an
    initrd whose ``/init`` is ``init`` (with the discovery script at /lib/contractor)."""
    kernel = installed_kernel()
    directory.mkdir(parents=True, exist_ok=True)
    vmlinuz = directory / "vmlinuz"
    if not vmlinuz.exists():
        vmlinuz.symlink_to(kernel.image)
    initrd = build_initrd(
        directory / name, init, kernel=kernel, files={LIBRARY: discovery_init().encode()}
    )
    return BootImage(vmlinuz=vmlinuz, initrd=initrd, modules=())
