"""``contractor discovery-image build``: the image written where --out says, JSON with
--json, and one-line refusals that write nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from contractor.cli import main

BUSYBOX = Path("/bin/busybox")


@pytest.fixture
def kernel(tmp_path: Path) -> Path:
    modules = tmp_path / "modules" / "6.1.0-9-test"
    (modules / "kernel").mkdir(parents=True)
    (modules / "kernel" / "virtio_net.ko").write_bytes(b"virtio_net")
    (modules / "modules.dep").write_text("kernel/virtio_net.ko:\n")
    image = tmp_path / "vmlinuz-6.1.0-9-test"
    image.write_bytes(b"kernel")
    return image


def test_build_writes_vmlinuz_and_initrd_with_the_kernel_modules(
    tmp_path: Path, kernel: Path
) -> None:
    if not BUSYBOX.is_file():
        pytest.skip("busybox-static not installed (scripts/test installs it)")
    out = tmp_path / "files" / "discovery"
    modules = tmp_path / "modules" / "6.1.0-9-test"
    arguments = ["--out", str(out), "--kernel", str(kernel), "--modules-dir", str(modules)]
    done = CliRunner().invoke(main, ["discovery-image", "build", *arguments, "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.output) == {
        "vmlinuz": str(out / "vmlinuz"),
        "initrd": str(out / "initrd"),
        "kernel": str(kernel),
        "modules": ["virtio_net"],
    }
    assert (out / "vmlinuz").read_bytes() == b"kernel"
    assert (out / "initrd").read_bytes()[:2] == b"\x1f\x8b"  # gzip

    done = CliRunner().invoke(main, ["discovery-image", "build", *arguments])
    assert done.exit_code == 0, done.output
    assert f"wrote {out / 'vmlinuz'} (from {kernel}) and {out / 'initrd'}" in done.output
    assert "modules: virtio_net" in done.output


def test_a_busybox_that_is_not_static_is_refused_in_one_line(tmp_path: Path, kernel: Path) -> None:
    out = tmp_path / "out"
    done = CliRunner().invoke(
        main,
        [
            "discovery-image",
            "build",
            "--out",
            str(out),
            "--kernel",
            str(kernel),
            "--busybox",
            "/bin/ls",
        ],
    )
    assert done.exit_code == 1
    assert "busybox /bin/ls is dynamically linked: install Debian's busybox-static" in done.output
    assert "Traceback" not in done.output
    assert not (out / "initrd").exists()
    assert not (out / "vmlinuz").exists()


def test_a_missing_kernel_is_a_usage_error(tmp_path: Path) -> None:
    done = CliRunner().invoke(
        main, ["discovery-image", "build", "--out", str(tmp_path), "--kernel", "/nope/vmlinuz"]
    )
    assert done.exit_code == 2
    assert "'/nope/vmlinuz' does not exist" in done.output
