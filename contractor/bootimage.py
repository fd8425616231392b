"""Boot images from Debian packages: a Linux kernel and a small busybox initrd around an
``/init`` script.

The discovery image (``contractor discovery-image build``) is the shipped
``resources/discovery/init.sh`` as ``/init``; the end-to-end tests build their own initrds
with the same builder. What goes into an initrd::

    /init                     the script (mode 0755)
    /bin/busybox, /bin/sh...  busybox-static and a link per applet the script may call
    /lib/modules/<ver>/...    the kernel modules the NICs and disks need, with their
                              dependencies, listed in load order in /etc/modules
    /dev, /proc, /sys, ...    empty mount points

The archive is written in the kernel's ``newc`` cpio format and gzipped, in Python: no
``cpio`` tool is needed. Nothing here imports the database or network code.
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
import stat
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from contractor.errors import ContractorError

# The drivers a discovery boot loads when the kernel has them as modules: virtual NICs and
# disks first (QEMU, cloud hypervisors), then common server NICs. Missing ones are skipped
# (Debian's cloud kernel has no Intel drivers; its generic kernel has them all).
DEFAULT_MODULES: tuple[str, ...] = (
    "virtio_pci",
    "virtio_net",
    "virtio_blk",
    "virtio_scsi",
    "e1000",
    "e1000e",
    "igb",
    "ixgbe",
    "i40e",
    "ice",
    "bnxt_en",
    "tg3",
    "r8169",
    "mlx4_en",
    "mlx5_core",
    "ahci",
    "nvme",
    "sd_mod",
)

# The busybox applets an initrd gets as links (the shipped init script uses these).
APPLETS: tuple[str, ...] = (
    "sh", "cat", "echo", "ls", "mount", "umount", "mkdir", "insmod", "modprobe", "ip",
    "ifconfig", "route", "udhcpc", "wget", "sed", "grep", "tr", "wc", "cut", "head", "tail",
    "sleep", "poweroff", "reboot", "printf", "basename", "dirname", "rm", "mv", "cp", "ln",
    "expr", "test", "[", "uname", "date", "dmesg", "hostname", "seq", "awk", "sort", "xargs",
    "find", "chmod", "true", "false", "kill", "ps", "readlink", "stat", "od", "setsid", "sync",
    "timeout",
)  # fmt: skip


class BootImageError(ContractorError, code="BOOT_IMAGE"):
    """A boot image cannot be built: a kernel, module or busybox is missing or unusable."""


@dataclass(frozen=True)
class Kernel:
    """An unpacked Linux kernel: its image and the directory of its modules (may be absent
    when everything is built in)."""

    version: str
    image: Path
    modules: Path


def find_kernel(boot: Path = Path("/boot"), modules_root: Path = Path("/lib/modules")) -> Kernel:
    """The newest ``vmlinuz-<version>`` in ``boot`` with its ``<modules_root>/<version>``.
    Debian's ``linux-image-cloud-amd64`` (small) or ``linux-image-amd64`` install one."""
    images = sorted(boot.glob("vmlinuz-*"), key=lambda path: _version_key(path.name[8:]))
    if not images:
        raise BootImageError(
            f"no kernel in {boot} (vmlinuz-*): install one, e.g. "
            "`apt-get install --no-install-recommends linux-image-cloud-amd64`, "
            "or name it with --kernel"
        )
    image = images[-1]
    version = image.name.removeprefix("vmlinuz-")
    return Kernel(version=version, image=image, modules=modules_root / version)


def _version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    parts = version.replace("-", ".").split(".")
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in parts)


def module_load_order(modules_dir: Path, wanted: Iterable[str]) -> list[str]:
    """The module files (relative to ``modules_dir``) that loading ``wanted`` needs,
    dependencies first, from the kernel's ``modules.dep``. Modules the kernel has built in
    (``modules.builtin``) or lacks are skipped: one list serves many kernels."""
    dep_file = modules_dir / "modules.dep"
    if not dep_file.is_file():
        return []
    depends: dict[str, list[str]] = {}
    by_name: dict[str, str] = {}
    for line_number, line in enumerate(dep_file.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        path, separator, rest = line.partition(":")
        if not separator:
            raise BootImageError(f"{dep_file}:{line_number}: no ':' in {line!r}")
        depends[path] = rest.split()
        by_name[_module_name(path)] = path
    order: list[str] = []
    visiting: set[str] = set()

    def visit(path: str) -> None:
        if path in order or path in visiting:
            return
        visiting.add(path)
        for dependency in depends.get(path, []):
            visit(dependency)
        order.append(path)

    for name in wanted:
        found = by_name.get(name.replace("-", "_"))
        if found is not None:
            visit(found)
    return order


def _module_name(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    for suffix in (".ko.xz", ".ko.zst", ".ko.gz", ".ko"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return name.replace("-", "_")


def check_static(busybox: Path) -> None:
    """Refuse a busybox that is not a static executable: the initrd has no C library."""
    try:
        header = busybox.read_bytes()[:4096]
    except OSError as error:
        raise BootImageError(
            f"busybox {busybox}: {error.strerror} (install Debian's busybox-static)"
        ) from None
    if header[:4] != b"\x7fELF" or header[4] != 2:
        raise BootImageError(f"busybox {busybox} is not a 64-bit ELF executable")
    (phoff,) = struct.unpack_from("<Q", header, 32)
    phentsize, phnum = struct.unpack_from("<HH", header, 54)
    for index in range(phnum):
        offset = phoff + index * phentsize
        if offset + 4 > len(header):
            break
        (kind,) = struct.unpack_from("<I", header, offset)
        if kind == 3:  # PT_INTERP: needs a dynamic loader
            raise BootImageError(
                f"busybox {busybox} is dynamically linked: install Debian's busybox-static"
            )


class _Cpio:
    """A newc cpio archive, written entry by entry (directories before their contents)."""

    def __init__(self) -> None:
        self.buffer = io.BytesIO()
        self.inode = 1
        self.seen: set[str] = set()

    def _entry(
        self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)
    ) -> None:
        size, names = len(data), len(name) + 1
        fields = (self.inode, mode, 0, 0, 1, 0, size, 0, 0, rdev[0], rdev[1], names, 0)
        header = b"070701" + b"".join(b"%08x" % value for value in fields)
        self.inode += 1
        self.buffer.write(header + name.encode() + b"\0")
        self._pad()
        self.buffer.write(data)
        self._pad()

    def _pad(self) -> None:
        self.buffer.write(b"\0" * (-self.buffer.tell() % 4))

    def directory(self, name: str) -> None:
        parts = name.strip("/").split("/")
        for depth in range(1, len(parts) + 1):
            path = "/".join(parts[:depth])
            if path not in self.seen:
                self.seen.add(path)
                self._entry(path, stat.S_IFDIR | 0o755)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        name = name.strip("/")
        if "/" in name:
            self.directory(name.rsplit("/", 1)[0])
        self._entry(name, stat.S_IFREG | mode, data)

    def device(self, name: str, major: int, minor: int) -> None:
        self._entry(name.strip("/"), stat.S_IFCHR | 0o600, rdev=(major, minor))

    def symlink(self, name: str, target: str) -> None:
        name = name.strip("/")
        if "/" in name:
            self.directory(name.rsplit("/", 1)[0])
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        return self.buffer.getvalue()


def build_initrd(
    out: Path,
    init: str,
    *,
    kernel: Kernel | None = None,
    modules: Sequence[str] = DEFAULT_MODULES,
    busybox: Path = Path("/bin/busybox"),
    files: Mapping[str, bytes] | None = None,
) -> Path:
    """Write a gzipped initrd to ``out`` whose ``/init`` is the shell script ``init``, with
    busybox-static, the ``modules`` of ``kernel`` (with dependencies, in ``/etc/modules``
    in load order, for ``insmod``) and any extra ``files`` (path in the image → content)."""
    if not init.startswith("#!"):
        raise BootImageError("the init script must start with '#!' (e.g. #!/bin/sh)")
    check_static(busybox)
    archive = _Cpio()
    for directory in ("bin", "sbin", "dev", "proc", "sys", "tmp", "run", "etc", "root", "mnt"):
        archive.directory(directory)
    # the kernel opens /dev/console for init before anything can mount devtmpfs
    archive.device("dev/console", 5, 1)
    archive.file("bin/busybox", busybox.read_bytes(), 0o755)
    for applet in APPLETS:
        archive.symlink(f"bin/{applet}", "busybox")
    archive.symlink("sbin/init", "/init")
    order: list[str] = []
    if kernel is not None and modules:
        order = module_load_order(kernel.modules, modules)
        for relative in order:
            archive.file(
                f"lib/modules/{kernel.version}/{relative}",
                (kernel.modules / relative).read_bytes(),
            )
        version = kernel.version
        load_list = "".join(f"/lib/modules/{version}/{relative}\n" for relative in order)
        archive.file("etc/modules", load_list.encode())
    else:
        archive.file("etc/modules", b"")
    for name, data in (files or {}).items():
        archive.file(name, data)
    archive.file("init", init.encode(), 0o755)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(gzip.compress(archive.finish(), compresslevel=6, mtime=0))
    return out


def discovery_init() -> str:
    """The shipped discovery ``/init`` script (``contractor/resources/discovery/init.sh``)."""
    return (resources.files("contractor") / "resources" / "discovery" / "init.sh").read_text()


@dataclass(frozen=True)
class BootImage:
    """A kernel and an initrd side by side, as the boot endpoint serves them."""

    vmlinuz: Path
    initrd: Path
    modules: tuple[str, ...]


def build_discovery_image(
    out_dir: Path,
    *,
    kernel: Kernel | None = None,
    busybox: Path = Path("/bin/busybox"),
    modules: Sequence[str] = DEFAULT_MODULES,
) -> BootImage:
    """``out_dir/vmlinuz`` and ``out_dir/initrd``: the discovery image an operator places in
    the boot component's ``files_dir`` under ``discovery/``."""
    kernel = kernel or find_kernel()
    if not kernel.image.is_file():
        raise BootImageError(f"kernel image {kernel.image} does not exist")
    check_static(busybox)  # before anything is written
    out_dir.mkdir(parents=True, exist_ok=True)
    vmlinuz = out_dir / "vmlinuz"
    shutil.copyfile(kernel.image, vmlinuz)
    os.chmod(vmlinuz, 0o644)
    initrd = build_initrd(
        out_dir / "initrd", discovery_init(), kernel=kernel, modules=modules, busybox=busybox
    )
    loaded = tuple(_module_name(path) for path in module_load_order(kernel.modules, modules))
    return BootImage(vmlinuz=vmlinuz, initrd=initrd, modules=loaded)
