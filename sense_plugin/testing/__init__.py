"""A supported harness for tests and benchmarks: real server processes, a throwaway PostgreSQL,
the servers of a site.

Nothing of the server imports it (it is the top layer, above ``cli``); ``tests/`` and
``bench/`` both do, so neither needs the other. See ``docs/harness.rst``.
"""
