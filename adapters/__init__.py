"""Source systems in: each package turns its input into FHIR transaction Bundles.

``common`` holds what every adapter needs (bundle building on business identifiers,
identity, provenance, per-message results); each source has a package of its own.
"""
