"""The agent's ApproximateAgeOfOldestMessage from the engine's per-receive-count summary equals the
figure from every message (engine_patches/queue_summary.py replaced the full peek)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from lab.localcloud.agent import oldest_message_age
from lab.localcloud.engine_patches.queue_ages import oldest_by_receive_count

messages = st.lists(
    st.fixed_dictionaries(
        {"receive_count": st.integers(min_value=0, max_value=6), "sent_at": st.integers(0, 10_000)}
    ),
    max_size=40,
)


@given(messages, st.integers(min_value=10_000, max_value=20_000))
def test_the_summary_gives_the_age_every_message_gives(stored: list[dict[str, int]], now: int) -> None:
    peeked = [{"ReceiveCount": m["receive_count"], "SentTimestamp": m["sent_at"]} for m in stored]
    assert oldest_message_age(oldest_by_receive_count(stored), now) == oldest_message_age(peeked, now)


def test_a_message_received_three_times_no_longer_counts() -> None:
    stored = [{"receive_count": 3, "sent_at": 100}, {"receive_count": 1, "sent_at": 150}]
    assert oldest_by_receive_count(stored) == [
        {"ReceiveCount": 1, "SentTimestamp": 150},
        {"ReceiveCount": 3, "SentTimestamp": 100},
    ]
    assert oldest_message_age(oldest_by_receive_count(stored), 200.0) == 50.0
