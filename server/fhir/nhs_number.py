"""NHS number checks (modulus 11), shared by validation and every adapter.

An NHS number is ten digits; the tenth is a check digit computed from the first nine
with weights 10..2. A remainder giving 10 means the number was never issued.
"""

from __future__ import annotations

NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"


def check_digit(first_nine: str) -> int | None:
    """The check digit for nine digits, or None when no valid number has them."""
    total = sum(int(d) * w for d, w in zip(first_nine, range(10, 1, -1), strict=True))
    digit = 11 - total % 11
    if digit == 11:
        return 0
    if digit == 10:
        return None
    return digit


def is_valid(value: str) -> bool:
    """True for ten digits (spaces allowed, as printed on letters) with a correct check digit."""
    digits = value.replace(" ", "")
    if len(digits) != 10 or not digits.isdigit():
        return False
    return check_digit(digits[:9]) == int(digits[9])


def problem(value: str) -> str | None:
    """Why ``value`` is not a valid NHS number, or None when it is."""
    digits = value.replace(" ", "")
    if len(digits) != 10 or not digits.isdigit():
        return f"NHS number {value!r} must be 10 digits"
    expected = check_digit(digits[:9])
    if expected is None:
        return f"NHS number {value!r} cannot be valid (its check digit would be 10)"
    if expected != int(digits[9]):
        return f"NHS number {value!r} fails the modulus 11 check (check digit should be {expected})"
    return None
