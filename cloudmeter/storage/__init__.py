"""Storage: schema and migrations, embedded PostgreSQL, the binary-COPY writer and the readers."""
