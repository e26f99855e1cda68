"""Alembic migrations for the store; ``carebridge migrate`` and every start run them."""
