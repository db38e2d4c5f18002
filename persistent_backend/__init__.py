"""A Django database ENGINE for PostgreSQL that keeps connections across requests."""
