"""carebridge: the command line and settings that tie the adapters, store and API together.

The product code lives in ``server/`` (the FHIR API and store) and ``adapters/`` (source
systems in); this package only holds what both need: settings, paths and the CLI.
"""

__version__ = "0.1.0"
