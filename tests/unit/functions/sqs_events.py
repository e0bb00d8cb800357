"""Lambda SQS event records built from messages received from a (moto) queue."""

from __future__ import annotations

from typing import Any


def lambda_record(
    message: dict[str, Any], queue_arn: str = "arn:aws:sqs:us-east-1:123456789012:ingest-main"
) -> dict[str, Any]:
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": {
            name: {"stringValue": value.get("StringValue"), "dataType": value["DataType"]}
            for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": "us-east-1",
    }


def sqs_event(messages: list[dict[str, Any]]) -> dict[str, Any]:
    return {"Records": [lambda_record(message) for message in messages]}
