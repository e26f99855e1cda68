"""The carebridge FHIR server: REST API, store, search, consent, auth, validation and audit.

Dependency direction: ``api`` -> ``store`` (the repository) -> ``search`` / ``consent``
-> ``definitions`` / ``fhir``. Nothing below ``api`` knows about HTTP.
"""
