"""Reusable constructs of the ingestion stage (imported as app.constructs, never as `constructs`)."""
