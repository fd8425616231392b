"""The subcontractor agent: pulls tasks from Contractor and runs them near the hardware."""
