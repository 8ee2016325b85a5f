"""Django's SQLite backend, with each query's placeholders converted once (see ``base``)."""
