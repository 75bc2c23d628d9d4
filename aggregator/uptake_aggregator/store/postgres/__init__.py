"""The central PostgreSQL store: many hosts' daemons forward into it, reports read it.

Importing this package imports no driver: psycopg 3 (the ``uptake[postgres]`` extra) is
imported by the modules that talk to the server, only when a PostgreSQL URL is used.

- ``urls``: which locations are PostgreSQL URLs, and their redacted form for messages.
- ``schema``: the versioned central schema and its migrations (``usage store init``).
- ``connection``: connecting (libpq: passwords from the URL, ``PGPASSWORD`` or
  ``~/.pgpass``; ``sslmode`` and other parameters pass through) and migrating.
- ``central``: the forwarders' write path, one transaction per chunk of a host's events.
- ``alerts``: ``PostgresAlertLog``, the goal status changes kept in the centre.
- ``report_source``: ``PostgresReportSource``, the report's reads in SQL.
- ``store``: ``PostgresStore``, the ``Store`` that ``open_store`` returns for a URL.
"""
