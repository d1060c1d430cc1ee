"""The change stream: the syncer (PostgreSQL change_log -> Redis and its feed), the node follower (feed -> the
node's ``Catalog``) and the embedded backend (SQLite -> ``Catalog`` in one process). Imports the other parts.
"""
