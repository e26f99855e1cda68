"""Validation of resources on their way into the store and for ``$validate``.

``structure`` checks JSON shape, primitive types, cardinality and required bindings
against the R4 element definitions; ``resource`` combines it with fhir.resources' models,
the product's own rules (NHS numbers), R4's invariants (``invariants``) and the profiles
that apply (``policy``, ``profile``, ``terminology``) into OperationOutcome issues. The
rules and what is not checked: ``README.md`` in this folder.
"""
