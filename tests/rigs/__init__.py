"""The real-machine rig the boot tests stand on (docs/boot.md, "Watch one QEMU machine boot
by hand", is the same recipe by hand). Each part is a context manager that cleans up when
its block ends, also when the block fails::

    with network_namespace() as ns:                          # netns + bridge + veth to host
        with boot_http(str(ns.host_address), files) as http: # (the test's own HTTP server)
            with dnsmasq(ns, tmp / "dhcp", chain_url=f"{http.url}/ipxe?mac=${net0/mac}"):
                with qemu_vm(Machine(cpus=2), ns, tmp / "vm") as vm:   # off; console kept
                    with qemu_bmc(vm, tmp / "bmc") as bmc:   # ipmi_sim: power starts QEMU
                        bmc.ipmitool("chassis", "power", "on")
                        ...
                        assert vm.wait_off(60)

- ``tests.rigs.netns``: ``network_namespace``, ``Netns`` (``host_address`` on the host's
  veth end, ``namespace_address`` on the bridge, ``address(i)``, ``command(...)``),
  ``require_namespaces`` (the only skip: a machine without namespaces).
- ``contractor.bootimage``: ``find_kernel``, ``build_initrd(out, init_script, kernel=...)``,
  ``build_discovery_image``; ``tests.rigs.images`` wraps them for tests:
  ``installed_kernel``, ``initrd_image(directory, init)``, ``script_init(body)`` (a shell
  ``/init`` around the discovery script's ``bring_up``/``finish``, e.g. fetch
  ``/config/<uuid>`` and signal).
- ``tests.rigs.vm``: ``Machine`` (what the VM is: MAC, CPUs, memory, disk, serial, UUID,
  firmware ``bios``/``uefi``), ``qemu_vm`` → ``Vm`` (``start``, ``stop``, ``running``,
  ``wait_off``, ``console``, ``diagnostics``, ``power_on_times``), ``qemu_bmc`` → ``Bmc``
  (``port``, ``username``, ``password``, ``ipmitool(...)``, ``power()``,
  ``boot_device()``: what an ``ipmi`` Foundation points at). ``DISK_BOOTED`` appears on
  the console when the machine boots its local disk.
- ``tests.rigs.dhcp``: ``dnsmasq`` (DHCP, TFTP of Debian's iPXE, chain URL, RA).
- ``tests.rigs.http``: ``boot_http`` → ``BootHttp`` (``url``, ``routes``, ``requests``,
  ``wait_for``).
"""
