"""Extract: the declared sources (``$TREBOL_CONFIG_DIR/sources.yml``) read for one data interval
and loaded into the ``raw`` schema, bad rows quarantined, every batch audited.

Inputs: source declarations, export files under ``TREBOL_SOURCES_DIR``, source databases behind
Airflow connections. Outputs: rows in ``raw.<target>``, ``raw._quarantine``, ``raw._load_audit``."""
