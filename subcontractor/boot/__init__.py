"""The subcontractor's boot services (``docs/boot.md``): what its DHCP server leases,
reported to Contractor."""
