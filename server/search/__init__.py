"""FHIR search: ``query`` parses parameters into a :class:`SearchQuery` against the
registry's SearchParameter definitions; ``sql`` compiles it into SQLAlchemy predicates
over the store's index tables. The repository runs the result; nothing here does I/O."""
