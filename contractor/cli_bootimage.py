"""``contractor discovery-image build``: the discovery boot image (a Debian kernel and a
busybox initrd around the shipped ``resources/discovery/init.sh``) for the boot component's
``files_dir`` (docs/boot.md, "The discovery image")."""

from __future__ import annotations

import json
from pathlib import Path

import click

from contractor.bootimage import DEFAULT_MODULES, Kernel, build_discovery_image, find_kernel
from contractor.command import directory_for_output


@click.group("discovery-image")
def discovery_image() -> None:
    """The boot image unknown machines are discovered with."""


@discovery_image.command("build")
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Write vmlinuz and initrd here (e.g. <files_dir>/discovery).",
)
@click.option(
    "--kernel",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="A kernel image (default: the newest /boot/vmlinuz-*).",
)
@click.option(
    "--modules-dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Its modules (default: /lib/modules/<version of vmlinuz-<version>>).",
)
@click.option(
    "--busybox",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("/bin/busybox"),
    show_default=True,
    help="A static busybox (Debian's busybox-static).",
)
@click.option(
    "--module",
    "modules",
    multiple=True,
    help="A module to load, with its dependencies (repeatable; default: common NIC and "
    "disk drivers, those the kernel has).",
)
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
def build(
    out: Path,
    kernel: Path | None,
    modules_dir: Path | None,
    busybox: Path,
    modules: tuple[str, ...],
    as_json: bool,
) -> None:
    """Build the discovery image from the installed Debian packages (a kernel such as
    linux-image-cloud-amd64 or linux-image-amd64, and busybox-static)."""
    directory_for_output(out, "the --out directory")
    if kernel is None:
        chosen = find_kernel()
        if modules_dir is not None:
            chosen = Kernel(chosen.version, chosen.image, modules_dir)
    else:
        version = kernel.name.removeprefix("vmlinuz-")
        chosen = Kernel(version, kernel, modules_dir or Path("/lib/modules") / version)
    image = build_discovery_image(
        out, kernel=chosen, busybox=busybox, modules=modules or DEFAULT_MODULES
    )
    written = {
        "vmlinuz": str(image.vmlinuz),
        "initrd": str(image.initrd),
        "kernel": str(chosen.image),
        "modules": list(image.modules),
    }
    if as_json:
        click.echo(json.dumps(written))
        return
    click.echo(f"wrote {image.vmlinuz} (from {chosen.image}) and {image.initrd}")
    click.echo(f"modules: {', '.join(image.modules) or '(none: all built in, or none found)'}")
