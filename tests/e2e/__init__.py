"""End-to-end boot tests: real QEMU machines booted through the whole stack (``contractor
serve`` on PostgreSQL, a ``subcontractor`` with the ``ipmi`` module and its boot services,
``ipmi_sim`` as the BMC), on the rig of ``tests/rigs/``."""
