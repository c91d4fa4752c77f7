"""What planrun remembers: the state folder, its lock, the store (protocol and SQLite), the
journal, recovery after a crash, and the queries of status, logs and report."""
