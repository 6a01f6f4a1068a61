"""Predicted customer value: BG/NBD and Gamma-Gamma fitted by maximum likelihood (``fitting``), the
nightly predictions written as dbt's source ``clv`` (``predictions``) and a backtest with plots
(``backtest``).

Inputs: ``marts.fct_transactions`` as of the run's date (or any transaction export, for
``trebol clv fit``). Outputs: ``marts.customer_clv``, ``marts.clv_model_runs``, report plots."""
