"""FHIR datatype rules shared by every layer: errors as OperationOutcome, dates as
ranges, identifiers, text normalisation. No I/O and no knowledge of the store here."""
