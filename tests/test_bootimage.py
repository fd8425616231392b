"""contractor.bootimage: the initrd archive (read back entry by entry), module dependency
order from modules.dep, the kernel found in /boot, and the refusals (no kernel, a busybox
that is not static, an init script without #!)."""

from __future__ import annotations

import gzip
import stat
from pathlib import Path

import pytest

from contractor.bootimage import (
    BootImageError,
    Kernel,
    build_discovery_image,
    build_initrd,
    check_static,
    discovery_init,
    find_kernel,
    module_load_order,
)

BUSYBOX = Path("/bin/busybox")


def entries(initrd: Path) -> dict[str, tuple[int, bytes, tuple[int, int]]]:
    """name → (mode, data, (rdevmajor, rdevminor)) of a gzipped newc cpio archive."""
    data = gzip.decompress(initrd.read_bytes())
    found: dict[str, tuple[int, bytes, tuple[int, int]]] = {}
    offset = 0
    while True:
        assert data[offset : offset + 6] == b"070701", f"bad magic at {offset}"
        fields = [int(data[offset + 6 + 8 * i : offset + 14 + 8 * i], 16) for i in range(13)]
        mode, size, rdev, name_size = fields[1], fields[6], (fields[9], fields[10]), fields[11]
        name_start = offset + 110
        name = data[name_start : name_start + name_size - 1].decode()
        body = name_start + name_size + (-(110 + name_size) % 4)
        if name == "TRAILER!!!":
            return found
        found[name] = (mode, data[body : body + size], rdev)
        offset = body + size + (-size % 4)


@pytest.fixture
def busybox() -> Path:
    if not BUSYBOX.is_file():
        pytest.skip("busybox-static not installed (scripts/test installs it)")
    check_static(BUSYBOX)
    return BUSYBOX


@pytest.fixture
def kernel(tmp_path: Path) -> Kernel:
    """A fake kernel whose modules.dep has a chain (c needs b needs a) and a stranger."""
    modules = tmp_path / "lib" / "modules" / "6.1.0-9-test"
    for name in ("a", "b", "c", "unused"):
        path = modules / "kernel" / "drivers" / f"{name}.ko"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"module {name}".encode())
    (modules / "modules.dep").write_text(
        "kernel/drivers/a.ko:\n"
        "kernel/drivers/b.ko: kernel/drivers/a.ko\n"
        "kernel/drivers/c.ko: kernel/drivers/b.ko kernel/drivers/a.ko\n"
        "kernel/drivers/unused.ko:\n"
    )
    image = tmp_path / "boot" / "vmlinuz-6.1.0-9-test"
    image.parent.mkdir()
    image.write_bytes(b"kernel image")
    return Kernel(version="6.1.0-9-test", image=image, modules=modules)


def test_module_order_puts_dependencies_first_and_skips_what_the_kernel_lacks(
    kernel: Kernel,
) -> None:
    order = module_load_order(kernel.modules, ["c", "missing", "a", "b"])
    assert order == ["kernel/drivers/a.ko", "kernel/drivers/b.ko", "kernel/drivers/c.ko"]
    assert module_load_order(kernel.modules / "nowhere", ["c"]) == []


def test_a_malformed_modules_dep_is_refused_naming_file_and_line(kernel: Kernel) -> None:
    (kernel.modules / "modules.dep").write_text("kernel/drivers/a.ko:\nnonsense\n")
    with pytest.raises(BootImageError, match=r"modules\.dep:2: no ':'"):
        module_load_order(kernel.modules, ["a"])


def test_the_initrd_holds_init_busybox_console_and_modules_in_load_order(
    tmp_path: Path, kernel: Kernel, busybox: Path
) -> None:
    initrd = build_initrd(
        tmp_path / "out" / "initrd",
        "#!/bin/sh\necho hello\n",
        kernel=kernel,
        modules=["c"],
        busybox=busybox,
        files={"etc/extra": b"x"},
    )
    found = entries(initrd)
    mode, data, _ = found["init"]
    assert data == b"#!/bin/sh\necho hello\n"
    assert stat.S_ISREG(mode)
    assert mode & 0o777 == 0o755
    assert found["bin/busybox"][1] == busybox.read_bytes()
    assert stat.S_ISLNK(found["bin/sh"][0])
    assert found["bin/sh"][1] == b"busybox"
    assert stat.S_ISLNK(found["bin/udhcpc"][0])
    console_mode, _, console_rdev = found["dev/console"]
    assert stat.S_ISCHR(console_mode)
    assert console_rdev == (5, 1)
    root = "/lib/modules/6.1.0-9-test/kernel/drivers"
    assert found["etc/modules"][1].decode().split() == [f"{root}/{m}.ko" for m in "abc"]
    assert found["lib/modules/6.1.0-9-test/kernel/drivers/c.ko"][1] == b"module c"
    assert "lib/modules/6.1.0-9-test/kernel/drivers/unused.ko" not in found
    assert found["etc/extra"][1] == b"x"
    # every directory comes before what it holds (the kernel unpacks in order)
    names = list(found)
    for name in names:
        if "/" in name:
            assert names.index(name.rsplit("/", 1)[0]) < names.index(name)


def test_an_init_without_an_interpreter_line_is_refused(tmp_path: Path, busybox: Path) -> None:
    with pytest.raises(BootImageError, match="must start with '#!'"):
        build_initrd(tmp_path / "initrd", "echo hello\n", busybox=busybox)
    assert not (tmp_path / "initrd").exists()


def test_a_busybox_that_is_missing_not_elf_or_dynamic_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BootImageError, match=r"busybox .*/nothing: No such file.*busybox-static"):
        check_static(tmp_path / "nothing")
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\n")
    with pytest.raises(BootImageError, match="not a 64-bit ELF executable"):
        check_static(script)
    dynamic = Path("/bin/ls")  # coreutils: dynamically linked on Debian
    with pytest.raises(BootImageError, match="dynamically linked: install Debian's busybox"):
        check_static(dynamic)


def test_find_kernel_takes_the_newest_version_and_names_the_fix_when_there_is_none(
    tmp_path: Path,
) -> None:
    boot = tmp_path / "boot"
    boot.mkdir()
    with pytest.raises(BootImageError, match=r"no kernel in .*linux-image-cloud-amd64"):
        find_kernel(boot, tmp_path)
    for version in ("6.1.0-9-cloud-amd64", "6.1.0-10-cloud-amd64", "5.10.0-30-amd64"):
        (boot / f"vmlinuz-{version}").write_bytes(b"")
    found = find_kernel(boot, tmp_path / "modules")
    assert found.version == "6.1.0-10-cloud-amd64"
    assert found.modules == tmp_path / "modules" / "6.1.0-10-cloud-amd64"


def test_the_discovery_image_is_the_kernel_and_the_shipped_init(
    tmp_path: Path, kernel: Kernel, busybox: Path
) -> None:
    image = build_discovery_image(tmp_path / "discovery", kernel=kernel, busybox=busybox)
    assert image.vmlinuz.read_bytes() == b"kernel image"
    assert entries(image.initrd)["init"][1] == discovery_init().encode()
    assert discovery_init().startswith("#!/bin/sh\n")
    assert image.modules == ()  # the fake kernel has none of the default drivers
    with pytest.raises(BootImageError, match="does not exist"):
        build_discovery_image(
            tmp_path / "x", kernel=Kernel("1", tmp_path / "none", tmp_path), busybox=busybox
        )
