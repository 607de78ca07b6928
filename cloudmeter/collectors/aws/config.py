"""The ``[managers.NAME]`` table of kind ``aws``."""

from __future__ import annotations

import re
from typing import Final, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from cloudmeter.collectors.base import ManagerConfig, Secret

_REGION: Final = re.compile(r"^[a-z]{2}(-[a-z0-9]+)+-\d+$")
_ROLE_ARN: Final = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$")


class AwsConfig(ManagerConfig):
    """One AWS account and region. Without keys, boto3's default credential chain is used."""

    model_config = ConfigDict(hide_input_in_errors=True)  # the input holds the secret

    kind: Literal["aws"] = Field("aws", description="the collector kind")
    region: str = Field(description="the AWS region, e.g. us-east-1")
    access_key_id: str | None = Field(
        default=None, description="an access key id (AKIA...); none: boto3's default credential chain"
    )
    secret_access_key: Secret | None = Field(default=None, description="the secret of access_key_id")
    role_arn: str | None = Field(
        default=None,
        description="a role to assume (sts:AssumeRole) with the credentials above; refreshed before it expires",
    )
    endpoint_url: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="one endpoint for STS, EC2 and CloudWatch, e.g. a moto server or a VPC endpoint",
    )
    cluster_tag: str | None = Field(
        default=None,
        min_length=1,
        description="a tag whose value is an instance's cluster (e.g. aws:autoscaling:groupName); else its zone",
    )

    @field_validator("region")
    @classmethod
    def _region_format(cls, value: str) -> str:
        if not _REGION.match(value):
            raise ValueError(f"{value!r} is not an AWS region name; use one like us-east-1 or eu-west-2")
        return value

    @field_validator("role_arn")
    @classmethod
    def _role_format(cls, value: str | None) -> str | None:
        if value is not None and not _ROLE_ARN.match(value):
            raise ValueError("must look like arn:aws:iam::123456789012:role/NAME")
        return value

    @model_validator(mode="after")
    def _keys_in_pairs(self) -> AwsConfig:
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError(
                "give both access_key_id and secret_access_key, or neither to use the default credential chain"
            )
        return self
