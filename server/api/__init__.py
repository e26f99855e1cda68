"""The FHIR REST surface: HTTP in, repository calls, FHIR JSON out.

``app`` assembles the application; ``interactions`` maps each REST interaction to one
repository call; ``bundles`` builds searchset and history Bundles and their signed paging
links; ``transaction`` runs batch and transaction Bundles; ``capability`` describes what
is implemented. Nothing here decides who may see what: the repository does.
"""
