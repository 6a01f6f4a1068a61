"""Activation: audiences (dbt models ``audiences.aud_<name>``) staged for the quality gate with
their control groups (``staging``), then diff-synced to the destinations of
``$TREBOL_CONFIG_DIR/destinations.yml`` (``config``, ``sync``, ``destinations``: file, webhook,
Mailchimp, Meta custom audiences; ``http``: retries and limits), consent enforced, every change
audited; Mailchimp's opt-outs flow back as a source (``consent_feedback``).

Inputs: ``audiences.*``, ``marts.customer_segments``, Airflow connections. Outputs: the
``activation`` tables (staged members, holdouts, sync state, runs, records) and what the
destinations hold."""
