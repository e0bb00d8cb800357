"""The ingestion stage: the four stacks of one environment, deployable alone or by the pipeline."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Environment, Stage, Tags
from constructs import Construct

from app.config import StageConfig
from app.stacks.api_stack import ApiStack
from app.stacks.functions_stack import FunctionsStack
from app.stacks.observability_stack import ObservabilityStack
from app.stacks.queue_stack import QueueStack
from functions.common import names


class IngestionStage(Stage):
    """Queues/state -> functions -> API -> observability, in one account and region.

    `outputs` maps every names.Output the stage produces to its CfnOutput, whichever stack owns
    the resource, so pipeline steps can use env_from_cfn_outputs.
    """

    def __init__(self, scope: Construct, construct_id: str, *, config: StageConfig, **kwargs: Any) -> None:
        super().__init__(
            scope, construct_id, env=Environment(account=config.account, region=config.region), **kwargs
        )
        self.config = config
        self.state = QueueStack(
            self,
            "Queues",
            config=config,
            stack_name=f"{config.prefix}-queues",
            description="Ingestion lab: queues, state tables, failure switch",
        )
        self.compute = FunctionsStack(
            self,
            "Functions",
            config=config,
            state=self.state,
            stack_name=f"{config.prefix}-functions",
            description="Ingestion lab: functions, event source, event bus",
        )
        self.api = ApiStack(
            self,
            "Api",
            config=config,
            compute=self.compute,
            stack_name=f"{config.prefix}-api",
            description="Ingestion lab: HTTP API",
        )
        self.observability = ObservabilityStack(
            self,
            "Observability",
            config=config,
            state=self.state,
            compute=self.compute,
            api=self.api,
            stack_name=f"{config.prefix}-observability",
            description="Ingestion lab: alarms, dashboard, queries, FIS drills, pipeline checks role",
        )
        Tags.of(self).add("Project", names.SERVICE_NAME)
        Tags.of(self).add("Environment", config.env_name)
        self.outputs: dict[names.Output, CfnOutput] = {
            **self.state.outputs,
            **self.compute.outputs,
            **self.api.outputs,
            **self.observability.outputs,
        }
