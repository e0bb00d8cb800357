"""The Locust user of `make bench`: POST /events as fast as it answers (unique valid events)."""

from __future__ import annotations

import uuid

from locust import FastHttpUser, constant, task


class IngestBenchUser(FastHttpUser):
    """One closed-loop client: the next POST leaves when the previous answered."""

    wait_time = constant(0)

    @task
    def post_event(self) -> None:
        body = {"orderId": f"bench-{uuid.uuid4().hex}", "amount": 12.5}
        with self.client.post("/events", json=body, name="POST /events", catch_response=True) as response:
            if response.status_code != 202:
                response.failure(f"status {response.status_code}")
