"""Load test for the ingestion API: a Locust file, a runner (`python -m loadtest`) and a threshold gate."""
