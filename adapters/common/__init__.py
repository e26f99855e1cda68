"""Machinery shared by every adapter: it knows FHIR and the store, never a source format."""
