"""A site of several recording servers on one PostgreSQL database (docs/site.rst).

Imported only when the configuration has a ``[cluster]`` table: a single server never loads
psycopg or procrastinate. The foundation: the versioned schema (``schema``), node heartbeats
and the site's lists (``nodes``), signed server-to-server calls (``signing``, ``internal``)
and the procrastinate queue per server (``queue``), started by ``ctx.cluster_ctx``.
"""
