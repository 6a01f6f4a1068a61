"""Erasure requests (the right to be forgotten): a person, named by one identifier, removed from
every layer of the warehouse and from every destination, and kept out of later loads.

- ``identifiers``: the kinds of identifier, how each is normalised (as staging does), and their
  salted hashes (the suppression list's keys), in Python and in SQL;
- ``suppression``: the suppression list, applied by the loader to every batch (rows of an erased
  person are not loaded: counted as ``rows_suppressed`` in ``raw._load_audit``);
- ``subject``: who the identifier names: customer keys, source records, every email and phone;
- ``purge``: the person deleted from ``raw`` (their rows, quarantined lines), the tables dbt
  built (staging to marts, history, audiences), Trébol's own tables (activation, CLV), and their
  identifiers redacted in the audit texts that quote them;
- ``requests``: the request's steps (open, suppress, destinations, purge, close), each recorded
  in ``audit.erasure_requests`` without the personal data itself; the DAG ``trebol_erasure``
  runs them as tasks, ``trebol erase`` one after the other.

Inputs: an identifier, the salt (``TREBOL_ERASURE_SALT``), the warehouse as ``trebol_eraser``,
the destinations' Airflow connections. Outputs: what the module docstrings say; never the
identifier itself in a log, an XCom, an error message or the audit.
"""
