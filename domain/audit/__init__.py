"""The audit trail: one record per action outcome (success, error, denied)."""

from domain.audit.record import AuditRecord, audit_entry

__all__ = ["AuditRecord", "audit_entry"]
