"""The glue between Airflow and the stages: one typed function per DAG task (``tasks``), the
warehouse through Airflow connections (``connections``), the Cosmos ``dbt build`` operator
(``dbt_build``) and the local runner behind ``trebol run`` and ``trebol demo`` (``local_runner``).

Inputs: a run's data interval and run id, Airflow connections. Outputs: what each stage writes,
and small JSON summaries for XCom (never data or secrets)."""
