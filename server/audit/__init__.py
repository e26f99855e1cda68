"""The audit trail: an IHE BALP AuditEvent for every access, stored in batches.

``capture`` (what a request leaves behind, on the hot path), ``events`` (AuditEvents
built from it), ``trail`` (queue, batched writer, middleware), ``store`` (where they
live), ``api`` (``/fhir/AuditEvent`` for auditors), ``cli`` (``carebridge audit``).
Calls the store through the repository only. Decisions and figures: README.md.
"""
