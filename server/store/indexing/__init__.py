"""Turns a resource into search index rows, once per write, from the search parameters'
compiled expressions. One module per value shape; :func:`build_rows` runs them all."""

from server.store.indexing.builder import IndexRows, build_rows

__all__ = ["IndexRows", "build_rows"]
