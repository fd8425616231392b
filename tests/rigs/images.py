"""Boot images for tests: the installed Debian kernel and initrds built around a test's
``/init`` (or the shipped discovery one), cached per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from contractor.bootimage import BootImage, BootImageError, Kernel, build_initrd, find_kernel


def installed_kernel() -> Kernel:
    """The kernel in /boot, or a skip outside CI (scripts/test installs
    linux-image-cloud-amd64 when /boot has none)."""
    try:
        return find_kernel()
    except BootImageError as error:
        if os.environ.get("CI"):
            pytest.fail(str(error))
        pytest.skip(str(error))


def initrd_image(directory: Path, init: str, *, name: str = "initrd") -> BootImage:
    """``directory/vmlinuz`` (a link to the kernel) and ``directory/<name>``, an initrd
    whose ``/init`` is ``init``."""
    kernel = installed_kernel()
    directory.mkdir(parents=True, exist_ok=True)
    vmlinuz = directory / "vmlinuz"
    if not vmlinuz.exists():
        vmlinuz.symlink_to(kernel.image)
    initrd = build_initrd(directory / name, init, kernel=kernel)
    return BootImage(vmlinuz=vmlinuz, initrd=initrd, modules=())
