"""The store: resources as JSON with every version kept, and the search index beside them.

``repository`` is the only way in or out; the REST layer never touches tables directly.
``schema`` holds the tables, ``indexing`` turns a resource into index rows, ``migrations``
holds the Alembic history that builds the schema on SQLite and PostgreSQL alike.
"""
