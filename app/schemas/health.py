"""Bodies of /api/v1/health."""

from typing import Literal

from pydantic import BaseModel


class HealthCheck(BaseModel):
    status: Literal["ok"]
    latency_ms: float


class NacosHealth(BaseModel):
    enabled: bool
    registered: bool


class Health(BaseModel):
    status: Literal["ok"]
    version: str
    uptime_seconds: float
    checks: dict[str, HealthCheck]
    nacos: NacosHealth


class Liveness(BaseModel):
    status: Literal["ok"]
