"""The warehouse: the embedded PostgreSQL server or an external one (``embedded``), its addresses
in the forms Airflow and dbt read (``address``), and every table dbt does not build, with its
versioned migrations (``ddl``).

Inputs: settings. Outputs: a DSN, schemas, Trébol's own tables."""
