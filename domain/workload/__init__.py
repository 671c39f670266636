"""Workload facts: vfolders, kernels and endpoints, as usage reports and purge checks need."""

from domain.workload.actions import (
    CreateEndpointAction,
    CreateVFolderAction,
    DestroyEndpointAction,
    RecordWorkloadBatchAction,
    RecordWorkloadBatchActionResult,
    ReportKernelStatsAction,
    StartKernelAction,
    TerminateKernelAction,
    WorkloadAction,
    WorkloadActionResult,
)
from domain.workload.aggregate import Endpoint, Kernel, VFolder
from domain.workload.service import WorkloadService

__all__ = [
    "CreateEndpointAction",
    "CreateVFolderAction",
    "DestroyEndpointAction",
    "Endpoint",
    "Kernel",
    "RecordWorkloadBatchAction",
    "RecordWorkloadBatchActionResult",
    "ReportKernelStatsAction",
    "StartKernelAction",
    "TerminateKernelAction",
    "VFolder",
    "WorkloadAction",
    "WorkloadActionResult",
    "WorkloadService",
]
