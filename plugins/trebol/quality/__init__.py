"""Data quality with Great Expectations: suites on the raw batches and the marts, their record in
``marts.data_quality_results``, Data Docs in the run's report folder, and the gate before the push.

The relations the suites read are dbt models (``dbt_project/models/quality``, schema
``quality``), built by the nightly dbt tasks. Modules: ``rules`` (config/quality.yml),
``gx_project`` (running the GX file project of ``expectations/gx``), ``results`` (the results
table), ``gate`` (the two check tasks' bodies) and ``data_docs`` (local copies of the Data Docs' web
assets, so the site opens offline).
"""
