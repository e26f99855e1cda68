"""DIALOG: the 11-item patient-rated outcome measure, its scores and their trend.

- :mod:`~server.dialog.questionnaire` reads the Questionnaire's structure from the
  package (``profiles/carebridge/Questionnaire-dialog.json``): the one source of linkIds,
  codes, answer options and which items are required.
- :mod:`~server.dialog.fit` refuses a QuestionnaireResponse that does not fit it.
- :mod:`~server.dialog.scoring` computes the two scores.
- :mod:`~server.dialog.derived` builds the derived Observations and keeps them in step
  with their response (a store write hook, see :mod:`server.store.hooks`).
- :mod:`~server.dialog.trend` is the query behind ``Patient/{id}/$dialog-trend``.

Decisions are written down in ``server/dialog/README.md``. This package may call the
store's unit of work and the package definitions; the API calls it, never the reverse.
"""
