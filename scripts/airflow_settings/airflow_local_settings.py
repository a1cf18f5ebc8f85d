"""Airflow local settings of the deployment (scripts/airflow_local.sh puts this folder on the
Airflow processes' PYTHONPATH; Airflow imports this module when each component starts).

It imports astronomer-cosmos's modules once, in each component: LocalExecutor forks every task
process from the scheduler, so the ~90 tasks of a monthly run find Cosmos already imported
instead of each importing it again (close to a second of CPU per task on a small machine).
"""
import cosmos.airflow.task_group  # noqa: F401
import cosmos.operators.watcher  # noqa: F401
