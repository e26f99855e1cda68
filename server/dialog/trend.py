"""The DIALOG trend of one service user: a search over their derived Observations.

``GET Patient/{id}/$dialog-trend`` answers the same searchset Bundle as the plain search

    Observation?subject=Patient/{id}&code=<the 13 codes>&_sort=date

(the two scores' codes in ``https://fhir.carebridge.example/CodeSystem/dialog-score`` and
the 11 items' SNOMED CT codes, see :func:`trend_search`), so a client may use either.
``start`` and ``end`` bound the responses' authored date (``date=ge``/``date=le``),
``_since`` their last change (``_lastUpdated=ge``). It runs through the repository with
the caller's access context, like every search.
"""

from __future__ import annotations

from server.dialog.derived import trend_codes
from server.dialog.questionnaire import Dialog


def trend_search(
    patient_id: str, *, start: str | None = None, end: str | None = None, since: str | None = None,
    count: int | None = None, q: Dialog | None = None,
) -> list[tuple[str, str]]:
    """The search parameters of the trend of ``Patient/patient_id`` (for ``Observation``)."""
    params = [
        ("subject", f"Patient/{patient_id}"),
        ("code", ",".join(f"{system}|{code}" for system, code in trend_codes(q))),
    ]
    if start:
        params.append(("date", f"ge{start}"))
    if end:
        params.append(("date", f"le{end}"))
    if since:
        params.append(("_lastUpdated", f"ge{since}"))
    params.append(("_sort", "date"))
    if count is not None:
        params.append(("_count", str(count)))
    return params
