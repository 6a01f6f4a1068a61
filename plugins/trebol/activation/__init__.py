"""Activation: the audiences of ``$TREBOL_CONFIG_DIR/audiences.yml`` staged for the quality gate
and pushed to their destinations with consent enforced and an audit trail (``audiences``).

Inputs: ``marts.customer_segments``, ``marts.dim_customers``. Outputs:
``activation.audience_members``, ``activation.push_log``, files in ``TREBOL_FILE_DROP_DIR``."""
