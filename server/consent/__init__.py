"""The one place that decides who may see and change what.

The repository asks :class:`AccessPolicy` for a :class:`Visibility` per resource type and
turns it into SQL predicates inside every query, so that totals, paging, includes and
history can never count or show what the caller may not see. Route handlers never decide
visibility themselves.
"""
