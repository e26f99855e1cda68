"""Validation of resources on their way into the store and for ``$validate``.

``structure`` checks JSON shape, primitive types, cardinality and required bindings
against the R4 element definitions; ``resource`` combines it with fhir.resources'
models and the product's own rules (NHS numbers) into OperationOutcome issues.
"""
