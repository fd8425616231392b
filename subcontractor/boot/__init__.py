"""The subcontractor's boot services (``docs/boot.md``, "The boot services"): the boot
data followed from Contractor (``follower``), a DHCP/TFTP server run from it (``backend``,
``dnsmasq``), the HTTP boot endpoint (``endpoint``), the leases reported back (``leases``),
all run by ``service`` when ``[boot]`` is enabled."""
