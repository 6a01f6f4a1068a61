"""Trébol: a nightly customer-loyalty data pipeline, as the package the DAGs, the tests and the
``trebol`` command import. Grouped by stage: ``extract`` (sources into ``raw``), ``warehouse``
(the PostgreSQL server and Trébol's own tables), ``clv`` (predicted value), ``quality`` (Great
Expectations), ``activation`` (audiences out), ``airflow`` (the glue the DAGs call), ``demo``
(simulated source systems, apart from the product); ``settings`` and ``interval`` are shared."""
