"""FHIR definitions the server runs on, loaded from the vendored data under ``profiles/``:
search parameters (with their FHIRPath compiled once), the Patient compartment and the
required bindings. Data comes from files; nothing here is retyped from the specification."""
