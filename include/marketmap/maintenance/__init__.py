"""The maintenance schedule's work (SPEC §10), without Airflow: monthly, quarterly personas, drift,
valuation and territories.

Each step takes a :class:`MaintenanceRun` (config, warehouse, the run's clock) and returns an
:class:`Outcome`: what it found (a small summary) and the alert candidates it raised. The task
wrappers in ``marketmap.orchestration.maintenance_tasks`` build the run from Airflow's context and
send the alerts; everything else lives here.
"""

from marketmap.maintenance.run import MaintenanceRun, Outcome

__all__ = ["MaintenanceRun", "Outcome"]
