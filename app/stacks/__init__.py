"""The four stacks of the ingestion stage: queues/state, functions, API and observability."""
