"""Every name that crosses the runtime/infrastructure line, defined once.

The Lambda code imports these at run time and the CDK app (app/) imports them at synth time,
so an environment variable, parameter, metric or event name can never drift between the two.
This module must stay dependency-free (standard library only): it is imported on cold start.
"""

from __future__ import annotations

from enum import StrEnum

SERVICE_NAME = "ingestion-lab"
# Every physical name of a stage (stacks, functions, queues, alarms) starts with
# f"{RESOURCE_PREFIX}-{envName}": the lab finds a deployed stage's stacks by it.
RESOURCE_PREFIX = "ingestion"


def function_log_group(function_name: str) -> str:
    """The log group a function writes to: Lambda's default name, which the stage also gives the
    explicit group it creates (so the checks and drills find it by the function's name)."""
    return f"/aws/lambda/{function_name}"


# --- SSM parameters -------------------------------------------------------------------------
FAILURE_MODE_PARAMETER = "/ingestion/failure_mode"
# The shared secret the Lambda authorizer compares x-api-key against (authMode apiKey) lives in
# Secrets Manager, not in an SSM SecureString: CloudFormation cannot create SecureString
# parameters, while it can generate a secret, so the stage stays deployable by `cdk deploy` alone.

# --- HTTP headers the API accepts (the authorizer, the ingest and the API's CORS all use them) --
API_KEY_HEADER = "x-api-key"
IDEMPOTENCY_KEY_HEADER = "idempotency-key"
# Keys the ingest computes (SHA-256 of the payload's RFC 8785 form) start with this; client keys
# never may, so a client cannot pre-empt another client's payload by sending its hash as a key.
COMPUTED_KEY_PREFIX = "sha256:"


# --- API routes (app/ deploys them; stage_client signs the operator ones) --------------------
# Producers may only POST /events, with the authMode's credential. The routes under this prefix
# read and move dead-lettered payloads: they take IAM authorization (SigV4) in every authMode, so
# only principals allowed execute-api:Invoke on them (operators, the pipeline's checks role) get in.
OPERATOR_PATH_PREFIX = "/redrive/"


class ApiRoute(StrEnum):
    """Every route of the HTTP API, as its route key "METHOD /path"."""

    EVENTS = "POST /events"
    REDRIVE_PREVIEW = "GET /redrive/preview"
    REDRIVE_START = "POST /redrive/start"
    REDRIVE_CANCEL = "POST /redrive/cancel"
    REDRIVE_STATUS = "GET /redrive/status"

    @property
    def method(self) -> str:
        return self.value.split(" ", 1)[0]

    @property
    def path(self) -> str:
        return self.value.split(" ", 1)[1]

    @property
    def for_operators(self) -> bool:
        return is_operator_path(self.path)


def is_operator_path(path: str) -> bool:
    """Whether a request path (with or without its leading slash) is an operator route."""
    return f"/{path.lstrip('/')}".startswith(OPERATOR_PATH_PREFIX)


class FailureMode(StrEnum):
    """Values of /ingestion/failure_mode that the break/fix lab understands."""

    NONE = "none"
    POISON_PAYLOAD = "poison_payload"
    SLOW_DOWNSTREAM = "slow_downstream"
    RANDOM_FAIL_P30 = "random_fail_p30"
    DUPLICATE_SUBMIT = "duplicate_submit"


# --- Environment variables (set by app/, read by functions/) -----------------------------------
class EnvVar(StrEnum):
    QUEUE_URL = "QUEUE_URL"
    DLQ_URL = "DLQ_URL"
    TABLE_NAME = "TABLE_NAME"
    REDRIVE_JOBS_TABLE_NAME = "REDRIVE_JOBS_TABLE_NAME"
    EVENT_BUS_NAME = "EVENT_BUS_NAME"
    FAILURE_MODE_PARAMETER = "FAILURE_MODE_PARAMETER"
    FAILURE_MODE_CACHE_SECONDS = "FAILURE_MODE_CACHE_SECONDS"
    API_KEY_SECRET_ARN = "API_KEY_SECRET_ARN"  # noqa: S105 - an env var name, not a secret
    TTL_DAYS = "TTL_DAYS"
    ENV_NAME = "ENV_NAME"
    MAX_BODY_BYTES = "MAX_BODY_BYTES"
    # Guardrails (chaos injection): whether this stage honours failure modes at all, and the
    # longest an injected mode may stay on.
    FAILURE_INJECTION_ENABLED = "FAILURE_INJECTION_ENABLED"
    FAILURE_MODE_MAX_TTL_SECONDS = "FAILURE_MODE_MAX_TTL_SECONDS"
    # Redrive storm protection.
    QUARANTINE_QUEUE_URL = "QUARANTINE_QUEUE_URL"
    MAX_REDRIVES_PER_MESSAGE = "MAX_REDRIVES_PER_MESSAGE"
    REDRIVE_MAX_MESSAGES_PER_SECOND = "REDRIVE_MAX_MESSAGES_PER_SECOND"
    # Powertools' own variables (names fixed by Powertools).
    POWERTOOLS_SERVICE_NAME = "POWERTOOLS_SERVICE_NAME"
    POWERTOOLS_METRICS_NAMESPACE = "POWERTOOLS_METRICS_NAMESPACE"
    POWERTOOLS_LOG_LEVEL = "POWERTOOLS_LOG_LEVEL"
    # "true" where no X-Ray daemon listens (the local cloud): the functions then never load the
    # X-Ray SDK (functions.common.observability.traced).
    POWERTOOLS_TRACE_DISABLED = "POWERTOOLS_TRACE_DISABLED"


# --- Lambda handlers (import path is the same in tests and in Lambda) ------------------------
class Handler(StrEnum):
    INGEST = "functions.ingest.handler.lambda_handler"
    WORKER = "functions.worker.handler.lambda_handler"
    REDRIVE = "functions.redrive.handler.lambda_handler"
    RESET = "functions.reset.handler.lambda_handler"
    AUTHORIZER = "functions.authorizer.handler.lambda_handler"
    EVENT_LOG = "functions.event_log.handler.lambda_handler"
    RELAY = "functions.relay.handler.lambda_handler"


# --- SQS message attributes written by ingest and redrive ------------------------------------
class MessageAttribute(StrEnum):
    IDEMPOTENCY_KEY = "idempotencyKey"
    SUBMITTED_AT = "submittedAt"
    ERROR_TYPE_CANDIDATE = "errorTypeCandidate"
    REDRIVE_COUNT = "redriveCount"
    REDRIVE_JOB_ID = "redriveJobId"
    # Set by the worker on a message it parks in the DLQ itself (an idempotency conflict): the
    # redrive reads the error type here, since the key's state record belongs to the first payload.
    ERROR_TYPE = "errorType"


# --- DynamoDB state table ------------------------------------------------------------------
STATE_TABLE_PARTITION_KEY = "idempotencyKey"
STATE_TABLE_TTL_ATTRIBUTE = "expiresAt"
REDRIVE_JOBS_PARTITION_KEY = "jobId"
REDRIVE_JOBS_TTL_ATTRIBUTE = "expiresAt"


class RecordStatus(StrEnum):
    INFLIGHT = "INFLIGHT"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    QUARANTINED = "QUARANTINED"


# --- Error types (errorType in logs, state records, events and the redrive filter) -----------
class ErrorType(StrEnum):
    SCHEMA_VALIDATION = "SchemaValidationError"
    TRANSIENT = "TransientDownstreamError"
    TIMEOUT = "DownstreamTimeoutError"
    UNEXPECTED = "UnexpectedError"
    # A key reused with another payload: the worker parks the message in the DLQ with this type.
    IDEMPOTENCY_CONFLICT = "IdempotencyConflict"


# The redrive filter value that selects messages whose key has no recorded error type: what a
# killed batch leaves behind besides the one record it was processing.
NO_ERROR_TYPE = "none"


# --- EventBridge ---------------------------------------------------------------------------
EVENT_SOURCE = "ingestion.lab"


class DetailType(StrEnum):
    SUCCESS = "IngestionSuccess"
    FAILURE = "IngestionFailure"


# --- Metrics (EMF, namespace shared by functions, metric filters, dashboard and alarms) ------
METRICS_NAMESPACE = "IngestionLab"


class MetricName(StrEnum):
    EVENTS_ACCEPTED = "EventsAccepted"
    EVENTS_REJECTED = "EventsRejected"
    RECORDS_PROCESSED = "RecordsProcessed"
    RECORDS_FAILED = "RecordsFailed"
    DUPLICATES_DETECTED = "DuplicatesDetected"
    INFLIGHT_CONFLICTS = "InflightConflicts"
    # A key reused with another payload (worker: parked in the DLQ; ingest: refused with 409).
    IDEMPOTENCY_CONFLICTS = "IdempotencyConflicts"
    PROCESSING_LATENCY = "ProcessingLatencyMs"
    REDRIVE_MOVED = "RedriveMessagesMoved"
    REDRIVE_QUARANTINED = "RedriveMessagesQuarantined"
    # Produced by log metric filters (app/), not by EMF.
    ERRORS_BY_TYPE = "ErrorsByType"
    PROCESSED_TRUE = "ProcessedTrue"


# --- Structured log fields (metric filters and Logs Insights queries match on these) ---------
class LogField(StrEnum):
    """Every field a function adds to a log line: one wire name per meaning (observability.fields)."""

    # Matched by metric filters and the saved Logs Insights queries (app/, ops/queries).
    REQUEST_ID = "requestId"
    IDEMPOTENCY_KEY = "idempotencyKey"
    ERROR_TYPE = "errorType"
    LATENCY_MS = "latencyMs"
    PROCESSED = "processed"
    DUPLICATE = "duplicate"
    REDRIVE_JOB_ID = "redriveJobId"
    # Context for a reader of one log line.
    MESSAGE_ID = "messageId"
    DUPLICATE_MESSAGE_ID = "duplicateMessageId"
    ERROR_TYPE_CANDIDATE = "errorTypeCandidate"
    RECORD_STATUS = "status"
    JOB_STATUS = "jobStatus"
    HTTP_STATUS = "httpStatus"
    ERROR_CODE = "code"
    REASON = "reason"
    ATTEMPTS = "attempts"
    REDRIVE_COUNT = "redriveCount"
    SEQUENCE_NUMBER = "sequenceNumber"
    RECORD_COUNT = "records"
    EVENT_COUNT = "events"
    STATE_RECORDED = "stateRecorded"
    QUEUE_URL = "queueUrl"
    MESSAGE_COUNT = "messages"
    ROUTE = "route"
    RUNNER = "runner"
    COUNTERS = "counters"
    PARAMS = "params"
    EVENT_ID = "eventId"
    EVENT_SOURCE = "source"
    EVENT_TIME = "time"
    DETAIL_TYPE = "detailType"
    DETAIL = "detail"
    FAILURE_MODE = "failureMode"
    RESOLUTION = "resolution"
    RAW_VALUE = "rawValue"
    EXPIRES_AT = "expiresAt"
    SET_BY = "setBy"
    PARAMETER = "parameter"
    PARAMETER_VALUE = "value"
    AUTHORIZED = "authorized"
    ROUTE_ARN = "routeArn"


# The stage configuration key (cdk.json) that deploys the event-log function and the event audit
# queue: the clients that count events name it when a stage has none (stage_client.audit).
EVENT_AUDIT_STAGE_KEY = "eventAudit"


# --- Stage outputs (CfnOutput keys: the lab CLI, pipeline steps and tests read these) ---------
class Output(StrEnum):
    API_URL = "ApiUrl"
    API_ID = "ApiId"
    QUEUE_URL = "QueueUrl"
    QUEUE_NAME = "QueueName"
    DLQ_URL = "DlqUrl"
    DLQ_NAME = "DlqName"
    QUARANTINE_QUEUE_URL = "QuarantineQueueUrl"
    TABLE_NAME = "TableName"
    REDRIVE_JOBS_TABLE_NAME = "RedriveJobsTableName"
    EVENT_BUS_NAME = "EventBusName"
    ALARM_TOPIC_ARN = "AlarmTopicArn"
    SUCCESS_TOPIC_ARN = "SuccessTopicArn"
    FAILURE_TOPIC_ARN = "FailureTopicArn"
    # A queue subscribed to the success/failure topics so that drills can count events; only on a
    # stage deployed with EVENT_AUDIT_STAGE_KEY true.
    EVENT_AUDIT_QUEUE_URL = "EventAuditQueueUrl"
    WORKER_FUNCTION_NAME = "WorkerFunctionName"
    INGEST_FUNCTION_NAME = "IngestFunctionName"
    REDRIVE_FUNCTION_NAME = "RedriveFunctionName"
    RELAY_FUNCTION_NAME = "RelayFunctionName"
    # Where the relay's event source mapping records a stream batch it gave up on
    # (ops/runbooks/event-relay.md).
    RELAY_FAILURE_QUEUE_URL = "RelayFailureQueueUrl"
    RESET_FUNCTION_NAME = "ResetFunctionName"
    GAMEDAY_ROLE_ARN = "GamedayRoleArn"
    DASHBOARD_NAME = "DashboardName"
    AUTH_MODE = "AuthMode"


# --- AWS FIS experiment templates (tag Name = "<stage prefix>-<slug>"; `lab gameday --injector fis`) --
FIS_TEMPLATE_NAME_TAG = "Name"


class FisExperiment(StrEnum):
    """Slugs of the stage's FIS experiment templates, one per drill that FIS can drive."""

    SLOW_DOWNSTREAM = "worker-delay-beyond-timeout"
    RANDOM_FAIL_P30 = "worker-invocation-error-30"


# --- Added by the functions work (helper-1) ----------------------------------------------------
class DeliveryMetricName(StrEnum):
    """Event and redrive deliveries (namespace METRICS_NAMESPACE, EMF)."""

    # Events the relay (or the worker, for a conflict) had EventBridge accept.
    EVENTS_PUBLISHED = "EventsPublished"
    # EventBridge entries still refused after one retry: the relay hands their stream records back
    # (batch item failures) and they come again; the worker's conflict message comes back.
    EVENTS_NOT_PUBLISHED = "EventsNotPublished"
    REDRIVE_SEND_FAILED = "RedriveSendFailed"


# Key of the asynchronous self-invocation event that runs a redrive job: {"redriveJobId": "<id>"}.
REDRIVE_JOB_EVENT_KEY = LogField.REDRIVE_JOB_ID.value


class EventDetailField(StrEnum):
    """Fields of the detail of IngestionSuccess / IngestionFailure events (drills count on them)."""

    # Deterministic per outcome (functions.common.events.event_id_for): every publication of one
    # outcome carries the same id, so consumers dedupe on it (delivery is at least once).
    EVENT_ID = "eventId"
    IDEMPOTENCY_KEY = "idempotencyKey"
    MESSAGE_ID = "messageId"
    STATUS = "status"
    ERROR_TYPE = "errorType"
    ATTEMPTS = "attempts"
    PROCESSED_AT = "processedAt"
