"""Who is asking: bearer tokens (signing, verifying, development keys) and SMART scopes.

Authentication ends with an :class:`server.consent.context.AccessContext`; deciding what
that caller may see is ``server/consent``'s job, not this package's. Registered clients
get tokens from the SMART Backend Services grant (``backend_services.py``, served as
``POST /auth/token``); its rules and the decisions behind them are in ``README.md`` here.
"""
