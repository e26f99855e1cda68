"""Real HL7 v2 referral bytes for tests, in the shape GP systems send."""

from __future__ import annotations


def referral(ref: str, *, trigger: str = "I12", nhs: str = "9434765919", priority: str = "R",
             when: str = "20240311093000", reason: str = "Low mood", version: str = "2.4",
             control: str | None = None, sep: str = "\r", charset: str = "") -> bytes:
    segs = [
        f"MSH|^~\\&|EMISWEB|C82040|CAP|RT5|{when}||REF^{trigger}^REF_I12|{control or ref + trigger}|P|{version}"
        f"|||AL|NE|GBR|{charset}",
        f"RF1|A^Accepted^HL70283|{priority}^x^HL70280|Psy^Psychiatric^HL70281||O|{ref}^C82040|20240311|||"
        f"^{reason}|UBRN{ref}",
        "PRD|RP^Referring Provider^HL70286|Sharma^Neha^^^Dr|25 Melbourne Road^Highfields Medical Centre^Leicester^^"
        "LE2 0GU^GBR^B|^^^C82040|0116 496 0101^WPN^PH||G8123456^GMP",
        "PRD|RT^Referred to Provider^HL70286|Central Access Point|Fosse Way^Leicestershire Partnership NHS Trust^"
        "Leicester^^LE19 1AA^GBR^B|^^^RT5",
        f"PID|1||{nhs}^^^NHS^NH||Reid^Chloe^^^Ms^^L||19800214|F|||7 Mere Road^^Leicester^^LE5 3HS^GBR^H||"
        "07700 900123^PRN^CP",
        "NK1|1|Reid^Sam|SPO^Spouse^HL70063|7 Mere Road^^Leicester^^LE5 3HS^GBR^H|07700 900456^PRN^CP||N^Next-of-Kin",
        "ZXT|1|local data",
        "DG1|1||F32.2^Severe depressive episode^I10||20240311|W",
        "OBR|1|||PHQ9^PHQ-9^L|||20240311",
        "OBX|1|NM|44261-6^PHQ-9 total score^LN||21|{score}^^UCUM|0-27||||F|||20240311",
        "PV1|1|O|^^^C82040",
        "NTE|1|P|Lives with partner \\T\\ family\\.br\\Safety plan \\F\\ agreed",
    ]
    return (sep.join(segs) + sep).encode("latin-1" if "8859" in charset else "utf-8")

#: the identifier system of referral ids (RF1-6) on ServiceRequest
SR = "https://fhir.carebridge.example/Id/gp-referral"
