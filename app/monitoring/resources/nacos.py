"""/monitoring/nacos: this instance's registration, the instances of other services, and the
configuration read from Nacos."""

from typing import Literal

from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, Field

from app.auth.decorators import admin_required, admin_required_in_production
from app.auth.tokens import BEARER_SECURITY
from app.core.errors import errors
from app.core.openapi import view_name
from app.extensions import limit_from_setting
from app.nacos import control as nacos_control
from app.schemas.fields import QueryParameters

nacos = APIBlueprint(
    "nacos", __name__, url_prefix="/monitoring/nacos", abp_tags=[Tag(name="nacos")], operation_id_callback=view_name
)


class NacosServiceStatus(BaseModel):
    enabled: bool
    service_name: str
    group: str
    namespace: str
    cluster: str
    ip: str | None
    port: int | None
    metadata: dict[str, str]
    registered: bool
    registrar: Literal["running", "not running"]
    server: str | None
    api: str | None
    last_heartbeat_at: str | None
    last_heartbeat_result: str | None
    consecutive_failures: int
    last_error: str | None


class NacosConfig(BaseModel):
    data_id: str
    group: str
    md5: str = Field(description='"" when the config does not exist')
    type: str | None
    origin: Literal["server", "snapshot", "failover", "absent"]
    last_modified: float | None = Field(description="seconds since the epoch, as the Nacos server says")


class NacosRejection(BaseModel):
    key: str = Field(description="dataId@group")
    setting: str | None
    message: str
    at: float


class NacosConfigStatus(BaseModel):
    enabled: bool
    watcher: Literal["running", "not running"]
    api: Literal["v1", "v3"] | None
    version: int | None
    updated_at: float | None
    configs: list[NacosConfig]
    sources: dict[str, str] = Field(
        description='where each setting comes from: "environment", a config ("dataId@group"), ".env" or "default"'
    )
    pending: list[str] = Field(description="settings changed in Nacos that take effect at the next restart")
    rejected: NacosRejection | None = Field(description="the last change refused, if any")


class NacosInstance(BaseModel):
    ip: str
    port: int
    weight: float
    healthy: bool
    enabled: bool
    cluster: str
    metadata: dict[str, str]


class ServiceInstances(BaseModel):
    service_name: str
    group: str
    instances: list[NacosInstance]


class ServicePath(BaseModel):
    service_name: str = Field(min_length=1, max_length=255, pattern=r"^[^@\s\x00]+$")


class InstancesQuery(QueryParameters):
    healthy: bool = Field(True, description="false lists unhealthy instances too")


# What the registry holds (addresses of this and other services, of the Nacos servers, their errors)
# is for administrators in production; development keeps the seed's curl examples working as written.
READ_DESCRIPTION = "Needs an administrator's token in production; open in development and testing."


@nacos.get(
    "/service",
    responses={200: NacosServiceStatus, **errors(401, 403)},
    security=BEARER_SECURITY,
    description=READ_DESCRIPTION,
)
@admin_required_in_production
def get_service():
    """This instance's registration: where, with what metadata, and how the heartbeats go"""
    return nacos_control.service_status()


@nacos.get(
    "/service/<service_name>/instances",
    responses={200: ServiceInstances, **errors(401, 403, 422, 429, 503)},
    security=BEARER_SECURITY,
    description=f"{READ_DESCRIPTION} Limited per client address by RATE_LIMIT_NACOS_LOOKUP.",
)
@limit_from_setting("RATE_LIMIT_NACOS_LOOKUP")
@admin_required_in_production
def get_instances(path: ServicePath, query: InstancesQuery):
    """Instances of a service, healthy ones unless ?healthy=false"""
    return nacos_control.service_instances(service_name=path.service_name, healthy_only=query.healthy)


@nacos.post("/service/register", responses={200: NacosServiceStatus, **errors(401, 403, 503)}, security=BEARER_SECURITY)
@admin_required
def register_service():
    """Register this instance (admins; idempotent)"""
    return nacos_control.set_registration(registered=True)


@nacos.post(
    "/service/deregister", responses={200: NacosServiceStatus, **errors(401, 403, 503)}, security=BEARER_SECURITY
)
@admin_required
def deregister_service():
    """Take this instance out of Nacos until registered again (admins; idempotent)"""
    return nacos_control.set_registration(registered=False)


@nacos.get("/config", responses={200: NacosConfigStatus, **errors(401, 403)}, security=BEARER_SECURITY)
@admin_required
def get_config():
    """The configuration read from Nacos: the configs in force, where each setting comes from, what waits
    for a restart, the last change refused (admins)"""
    return nacos_control.config_status()
