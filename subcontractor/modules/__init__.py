"""The modules shipped with the agent: ``ipmi``, ``iputils`` and ``simulated``."""
