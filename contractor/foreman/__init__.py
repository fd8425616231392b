"""The job engine: job-side TScript modules, remote calls, the stepping worker and the wake-up
hub. Services for jobs and tasks live in ``contractor.services.jobs`` and
``contractor.services.tasks``; the task API in ``contractor.rest.subcontractor``."""
