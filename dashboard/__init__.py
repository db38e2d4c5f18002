"""Staff-only live dashboard."""
