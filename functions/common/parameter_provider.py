"""The SSM provider of the failure-mode parameter, in a module of its own: only functions with failure
injection enabled import it, so where injection is off (prod) Powertools' parameters utility is
never loaded at cold start."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.parameters import BaseProvider


class ParameterWithMetadataProvider(BaseProvider):
    """SSM parameters returned with their LastModifiedDate, cached by Powertools' BaseProvider.

    Powertools' SSMProvider returns only the value, and the plain-value expiry rule needs the
    parameter's LastModifiedDate, hence this small provider over the same caching machinery.
    """

    def __init__(self, client: Any) -> None:
        super().__init__(client=client)
        self.client = client

    def _get(self, name: str, **sdk_options: Any) -> dict[str, Any]:
        parameter = self.client.get_parameter(Name=name, **sdk_options)["Parameter"]
        return {"value": parameter["Value"], "lastModified": parameter["LastModifiedDate"].timestamp()}

    def _get_multiple(self, path: str, **sdk_options: Any) -> dict[str, Any]:
        paginator = self.client.get_paginator("get_parameters_by_path")
        return {
            parameter["Name"]: {
                "value": parameter["Value"],
                "lastModified": parameter["LastModifiedDate"].timestamp(),
            }
            for page in paginator.paginate(Path=path, **sdk_options)
            for parameter in page["Parameters"]
        }
