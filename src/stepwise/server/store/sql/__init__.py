"""The persistence code every backend shares: portable SQL over a small ``Conn`` protocol.

Each function runs inside a transaction it does not own (the backend's writer decides
when it commits) and reads rows by column name. See ``conn.py`` for what SQL is allowed.
"""
