"""The services of one ledger, and one typed `ActionProcessor` per service method.

Each processor is an attribute named as its method, so mypy checks every caller's
action and result types; `all()` lists them (the permission walk and the audit tests
enumerate every processor through it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from domain.actions import ActionMonitor, ActionProcessor, ActionValidator, BaseAction, BaseActionResult
from domain.domains import DomainService
from domain.group import GroupService
from domain.keypair import KeyPairService
from domain.keypair_resource_policy import KeyPairResourcePolicyService
from domain.ports import AggregateStore
from domain.projection_ops import ProjectionOpsService, StalledProjections
from domain.session import SessionService
from domain.token import TokenService
from domain.usage import UsageReader
from domain.user import UserService
from domain.workload import WorkloadService

ActionT = TypeVar("ActionT", bound=BaseAction)
ResultT = TypeVar("ResultT", bound=BaseActionResult)


class Services:
    def __init__(self, store: AggregateStore, usage: UsageReader, timezone: str, stalls: StalledProjections) -> None:
        self.keypair_resource_policy = KeyPairResourcePolicyService(store)
        self.keypair = KeyPairService(store)
        self.group = GroupService(store, usage, timezone)
        self.workload = WorkloadService(store)
        self.session = SessionService(store)
        self.projection = ProjectionOpsService(store, stalls)
        self.domain = DomainService(store)
        self.user = UserService(store)
        self.token = TokenService(store)


class ServiceProcessors:
    """The processors of one service; subclasses name one attribute per action method."""

    def __init__(self, validators: list[ActionValidator], monitors: list[ActionMonitor]) -> None:
        self._validators = validators
        self._monitors = monitors

    def _wrap(self, method: Callable[[ActionT], Awaitable[ResultT]]) -> ActionProcessor[ActionT, ResultT]:
        return ActionProcessor(method, self._validators, self._monitors)

    def all(self) -> dict[str, ActionProcessor[BaseAction, BaseActionResult]]:
        """Every processor of this service, by its method's name."""
        return {name: value for name, value in vars(self).items() if isinstance(value, ActionProcessor)}


class KeyPairResourcePolicyProcessors(ServiceProcessors):
    def __init__(self, service: KeyPairResourcePolicyService, v: list[ActionValidator], m: list[ActionMonitor]) -> None:
        super().__init__(v, m)
        self.create_keypair_resource_policy = self._wrap(service.create_keypair_resource_policy)
        self.modify_keypair_resource_policy = self._wrap(service.modify_keypair_resource_policy)
        self.delete_keypair_resource_policy = self._wrap(service.delete_keypair_resource_policy)


class KeyPairProcessors(ServiceProcessors):
    def __init__(self, service: KeyPairService, v: list[ActionValidator], m: list[ActionMonitor]) -> None:
        super().__init__(v, m)
        self.create_keypair = self._wrap(service.create_keypair)
        self.modify_keypair = self._wrap(service.modify_keypair)
        self.delete_keypair = self._wrap(service.delete_keypair)


class GroupProcessors(ServiceProcessors):
    def __init__(self, service: GroupService, v: list[ActionValidator], m: list[ActionMonitor]) -> None:
        super().__init__(v, m)
        self.create_group = self._wrap(service.create_group)
        self.modify_group = self._wrap(service.modify_group)
        self.delete_group = self._wrap(service.delete_group)
        self.purge_group = self._wrap(service.purge_group)
        self.usage_per_month = self._wrap(service.usage_per_month)
        self.usage_per_period = self._wrap(service.usage_per_period)


class WorkloadProcessors(ServiceProcessors):
    def __init__(self, service: WorkloadService, v: list[ActionValidator], m: list[ActionMonitor]) -> None:
        super().__init__(v, m)
        self.create_vfolder = self._wrap(service.create_vfolder)
        self.start_kernel = self._wrap(service.start_kernel)
        self.report_kernel_stats = self._wrap(service.report_kernel_stats)
        self.terminate_kernel = self._wrap(service.terminate_kernel)
        self.create_endpoint = self._wrap(service.create_endpoint)
        self.destroy_endpoint = self._wrap(service.destroy_endpoint)
        self.record_workload_batch = self._wrap(service.record_workload_batch)


class SessionProcessors(ServiceProcessors):
    def __init__(self, service: SessionService, v: list[ActionValidator], m: list[ActionMonitor]) -> None:
        super().__init__(v, m)
        self.enqueue_session = self._wrap(service.enqueue_session)
        self.schedule_session = self._wrap(service.schedule_session)
        self.cancel_session = self._wrap(service.cancel_session)
        self.terminate_session = self._wrap(service.terminate_session)
        self.report_session_activity = self._wrap(service.report_session_activity)


class ProjectionOpsProcessors(ServiceProcessors):
    def __init__(self, service: ProjectionOpsService, v: list[ActionValidator], m: list[ActionMonitor]) -> None:
        super().__init__(v, m)
        self.skip_projection_event = self._wrap(service.skip_projection_event)


class DomainProcessors(ServiceProcessors):
    def __init__(self, service: DomainService, v: list[ActionValidator], m: list[ActionMonitor]) -> None:
        super().__init__(v, m)
        self.create_domain = self._wrap(service.create_domain)
        self.modify_domain = self._wrap(service.modify_domain)
        self.delete_domain = self._wrap(service.delete_domain)


class UserProcessors(ServiceProcessors):
    def __init__(self, service: UserService, v: list[ActionValidator], m: list[ActionMonitor]) -> None:
        super().__init__(v, m)
        self.create_user = self._wrap(service.create_user)
        self.modify_user = self._wrap(service.modify_user)
        self.delete_user = self._wrap(service.delete_user)
        self.erase_user = self._wrap(service.erase_user)


class TokenProcessors(ServiceProcessors):
    def __init__(self, service: TokenService, v: list[ActionValidator], m: list[ActionMonitor]) -> None:
        super().__init__(v, m)
        self.issue_token = self._wrap(service.issue_token)
        self.revoke_token = self._wrap(service.revoke_token)


class Processors:
    def __init__(
        self,
        services: Services,
        validators: list[ActionValidator] | None = None,
        monitors: list[ActionMonitor] | None = None,
    ) -> None:
        v, m = validators or [], monitors or []
        self.keypair_resource_policy = KeyPairResourcePolicyProcessors(services.keypair_resource_policy, v, m)
        self.keypair = KeyPairProcessors(services.keypair, v, m)
        self.group = GroupProcessors(services.group, v, m)
        self.workload = WorkloadProcessors(services.workload, v, m)
        self.session = SessionProcessors(services.session, v, m)
        self.projection = ProjectionOpsProcessors(services.projection, v, m)
        self.domain = DomainProcessors(services.domain, v, m)
        self.user = UserProcessors(services.user, v, m)
        self.token = TokenProcessors(services.token, v, m)
