#!/usr/bin/env python3
"""Realistic FHIR R4 NDJSON for loading a store of N resources with ``carebridge import``.

    .venv/bin/python benchmarks/make_store.py OUT.ndjson [--resources 1000000] [--seed 1]

The default mix (of N): 20% Patients, and, referring to them, 30% Observations, 18%
Encounters, 12% ServiceRequests, 12% Conditions and 8% CarePlans; for 1,000,000 that is
200,000 Patients. Patients carry a valid modulus-11 NHS number in the 999 test range (unique
in the file), an official name from a weighted list of UK surnames and given names, a
mobile number in Ofcom's drama range, a Leicester, Leicestershire or Rutland address, a
gender, a birth date and a registered GP practice (by ODS code). The other resources are
each written after their Patient, referring to it by ``Patient/<id>``.

Deterministic: the same ``--resources`` and ``--seed`` give the same bytes. Written as a
stream (memory stays flat). A manifest, ``OUT.manifest.json``, lists the counts per type
and samples that ``search_at_scale.py`` queries with: (id, NHS number) pairs of Patients,
subjects of ServiceRequests, and the Patient id at 90% of the file (whose ``lastUpdated``
after the import marks the last tenth).

Standard library only (orjson when importable, for speed).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import uuid
from pathlib import Path

try:
    import orjson

    def dumps(obj: dict) -> bytes:
        return orjson.dumps(obj)
except ImportError:  # pragma: no cover - the project's venv has orjson
    def dumps(obj: dict) -> bytes:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()

GENERATOR_VERSION = 1
NHS_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
LOCAL_MRN_SYSTEM = "https://fhir.lpt.nhs.uk/Id/rio-client-id"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"

#: share of N per resource type (Patients first; the rest refer to them)
MIX = {"Patient": 0.20, "Observation": 0.30, "Encounter": 0.18, "ServiceRequest": 0.12,
       "Condition": 0.12, "CarePlan": 0.08}

# (surname, weight): a frequency-shaped list, heavy at the top as in the UK
SURNAMES = [
    ("Smith", 60), ("Jones", 40), ("Patel", 38), ("Williams", 30), ("Taylor", 28), ("Brown", 28),
    ("Davies", 22), ("Evans", 18), ("Wilson", 18), ("Thomas", 16), ("Johnson", 16), ("Roberts", 15),
    ("Robinson", 14), ("Thompson", 14), ("Wright", 14), ("Walker", 13), ("White", 13), ("Edwards", 12),
    ("Hughes", 12), ("Green", 12), ("Hall", 12), ("Lewis", 11), ("Harris", 11), ("Clarke", 11),
    ("Jackson", 10), ("Wood", 10), ("Turner", 10), ("Martin", 10), ("Cooper", 9), ("Hill", 9),
    ("Ward", 9), ("Morris", 9), ("Moore", 9), ("Clark", 9), ("Lee", 8), ("King", 8), ("Baker", 8),
    ("Harrison", 8), ("Morgan", 8), ("Allen", 7), ("James", 7), ("Scott", 7), ("Phillips", 7),
    ("Watson", 7), ("Davis", 7), ("Parker", 6), ("Price", 6), ("Bennett", 6), ("Young", 6),
    ("Griffiths", 6), ("Mitchell", 6), ("Kelly", 6), ("Cook", 6), ("Carter", 6), ("Richardson", 5),
    ("Bailey", 5), ("Collins", 5), ("Bell", 5), ("Shaw", 5), ("Murphy", 5), ("Miller", 5),
    ("Cox", 5), ("Richards", 5), ("Khan", 12), ("Mistry", 8), ("Chauhan", 6), ("Parmar", 6),
    ("Solanki", 5), ("Lad", 4), ("Mahmood", 4), ("Hussain", 8), ("Ali", 8), ("Begum", 6),
    ("Singh", 10), ("Kaur", 8), ("Gill", 4), ("Okafor", 3), ("Adeyemi", 3), ("Mensah", 3),
    ("Nowak", 4), ("Kowalski", 3), ("Wisniewski", 2), ("Paterson", 4), ("Pattinson", 2),
    ("Palmer", 5), ("Parry", 4), ("Pearson", 5), ("Perkins", 3), ("Powell", 5), ("Pritchard", 3),
    ("Quinn", 2), ("Reid", 4), ("Rose", 3), ("Russell", 4), ("Saunders", 4), ("Sharma", 5),
    ("Simpson", 5), ("Stevens", 4), ("Stewart", 4), ("Sutton", 3), ("Tucker", 3), ("Walsh", 4),
    ("Webb", 4), ("West", 4), ("Wheeler", 3), ("Woods", 4), ("Yates", 3), ("Zhang", 2),
]
GIVEN_FEMALE = ["Olivia", "Amelia", "Isla", "Ava", "Mia", "Grace", "Sophie", "Emily", "Chloe", "Priya",
                "Aisha", "Fatima", "Zara", "Hannah", "Sarah", "Margaret", "Susan", "Janet", "Patricia",
                "Elizabeth", "Ewa", "Harpreet", "Amara", "Lucy", "Ruth", "Joan", "Anita", "Meera"]
GIVEN_MALE = ["Oliver", "George", "Noah", "Arthur", "Harry", "Leo", "Jack", "Mohammed", "Ibrahim", "Yusuf",
              "Rohan", "Arjun", "David", "John", "Michael", "Peter", "Paul", "James", "Robert", "Ben",
              "Dev", "Femi", "Jamal", "Tomasz", "Kwame", "Liam", "Ravi", "Sanjay"]
STREETS = ["Mere Road", "London Road", "Narborough Road", "Belgrave Gate", "Loughborough Road",
           "Melton Road", "Hinckley Road", "Uppingham Road", "Welford Road", "Aylestone Road",
           "Catherine Street", "Green Lane Road", "Evington Road", "Saffron Lane", "Groby Road",
           "Ashby Road", "Leicester Road", "Main Street", "Church Lane", "Station Road"]
TOWNS = [("Leicester", "LE1"), ("Leicester", "LE2"), ("Leicester", "LE3"), ("Leicester", "LE4"),
         ("Leicester", "LE5"), ("Wigston", "LE18"), ("Loughborough", "LE11"), ("Coalville", "LE67"),
         ("Hinckley", "LE10"), ("Market Harborough", "LE16"), ("Melton Mowbray", "LE13"),
         ("Oakham", "LE15"), ("Lutterworth", "LE17"), ("Syston", "LE7"), ("Enderby", "LE19")]
GP_PRACTICES = [("C82001", "Charnwood Surgery"), ("C82002", "Highfields Medical Centre"),
                ("C82003", "Oakham Medical Practice"), ("C82005", "The Limes Medical Centre"),
                ("C82007", "Hinckley Road Surgery"), ("C82009", "Melton Mowbray Health Centre"),
                ("C82010", "Wigston Central Surgery"), ("C82011", "Spinney Hill Medical Centre")]
CONDITIONS = [("35489007", "Depressive disorder"), ("197480006", "Anxiety disorder"),
              ("58214004", "Schizophrenia"), ("13746004", "Bipolar disorder"),
              ("110359009", "Intellectual disability"), ("35919005", "Pervasive developmental disorder"),
              ("47505003", "Posttraumatic stress disorder"), ("191736004", "Obsessive-compulsive disorder"),
              ("44054006", "Diabetes mellitus type 2"), ("38341003", "Hypertensive disorder")]
REFERRALS = [("3457005", "Patient referral"), ("306206005", "Referral to service"),
             ("183524004", "Referral to psychiatry service"), ("305344005", "Referral to community mental health team"),
             ("1082621000000105", "Referral to learning disability team")]
ENCOUNTER_TYPES = [("185347001", "Encounter for problem"), ("270427003", "Patient-initiated encounter"),
                   ("183460006", "Admission to psychiatric unit"), ("439708006", "Home visit"),
                   ("185316007", "Indirect encounter")]
CAREPLAN_CATS = [("736055001", "Mental health care plan"), ("734163000", "Care plan"),
                 ("412776001", "Crisis plan")]
SR_STATUS = [("active", 35), ("completed", 45), ("revoked", 10), ("on-hold", 5), ("draft", 5)]
# (loinc code, display, kind, weight)
OBSERVATIONS = [
    ("44261-6", "Patient Health Questionnaire 9 item (PHQ-9) total score", "phq9", 15),
    ("70274-6", "Generalized anxiety disorder 7 item (GAD-7) total score", "gad7", 15),
    ("8867-4", "Heart rate", "hr", 15),
    ("85354-9", "Blood pressure panel with all children optional", "bp", 15),
    ("29463-7", "Body weight", "weight", 15),
    ("39156-5", "Body mass index (BMI) [Ratio]", "bmi", 10),
    ("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "hba1c", 10),
    ("72166-2", "Tobacco smoking status", "smoking", 5),
]


def nhs_check_digit(first_nine: str) -> int | None:
    """Modulus 11 over weights 10..2; 11 gives 0 and 10 means no valid number has these nine digits."""
    total = sum(int(d) * w for d, w in zip(first_nine, range(10, 1, -1), strict=True))
    digit = 11 - total % 11
    if digit == 11:
        return 0
    if digit == 10:
        return None
    return digit


class NhsNumbers:
    """Unique valid NHS numbers in the 999 range: a walk over the million 999xxxxxx bodies with a
    step coprime to 10^6, from a seeded start, skipping bodies whose check digit would be 10."""

    def __init__(self, rng: random.Random):
        self.pos = rng.randrange(1_000_000)
        self.step = 1 + 2 * rng.randrange(1, 400_000)
        while self.step % 5 == 0:
            self.step += 2
        self.used = 0

    def __call__(self) -> str:
        while True:
            if self.used >= 1_000_000:
                raise SystemExit("make_store: the 999 range holds no more valid NHS numbers")
            body = f"999{self.pos:06d}"
            self.pos = (self.pos + self.step) % 1_000_000
            self.used += 1
            check = nhs_check_digit(body)
            if check is not None:
                return body + str(check)


class Generator:
    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.nhs = NhsNumbers(random.Random(seed * 7919 + 1))
        names, weights = zip(*SURNAMES, strict=True)
        self.surnames = list(names)
        cum, acc = [], 0
        for w in weights:
            acc += w
            cum.append(acc)
        self.surname_cum = cum
        self.base_day = 20_089  # 2025-01-01 as days since 1970-01-01

    def uid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def date(self, lo_year: int, hi_year: int) -> str:
        r = self.rng
        return f"{r.randrange(lo_year, hi_year + 1)}-{r.randrange(1, 13):02d}-{r.randrange(1, 29):02d}"

    def when(self) -> str:
        """A dateTime in 2019-2025, UTC, to the second."""
        r = self.rng
        return (f"{r.randrange(2019, 2026)}-{r.randrange(1, 13):02d}-{r.randrange(1, 29):02d}"
                f"T{r.randrange(8, 19):02d}:{r.randrange(60):02d}:{r.randrange(60):02d}+00:00")

    @staticmethod
    def cc(system: str, code: str, display: str) -> dict:
        return {"coding": [{"system": system, "code": code, "display": display}], "text": display}

    def patient(self) -> tuple[dict, str]:
        r = self.rng
        nhs = self.nhs()
        gender = r.choices(("female", "male", "other", "unknown"), (49, 49, 1, 1))[0]
        given = r.choice(GIVEN_FEMALE if gender == "female" else GIVEN_MALE if gender == "male"
                         else GIVEN_FEMALE + GIVEN_MALE)
        family = self.surnames[_bisect(self.surname_cum, r.randrange(self.surname_cum[-1]))]
        town, district = r.choice(TOWNS)
        ods, practice = r.choice(GP_PRACTICES)
        prefix = {"female": ["Ms", "Mrs", "Miss"], "male": ["Mr"]}.get(gender, ["Mx"])
        res = {
            "resourceType": "Patient",
            "id": self.uid(),
            "identifier": [
                {"system": NHS_SYSTEM, "value": nhs},
                {"system": LOCAL_MRN_SYSTEM, "value": f"RIO{r.randrange(10**7):07d}"},
            ],
            "active": True,
            "name": [{"use": "official", "family": family, "given": [given], "prefix": [r.choice(prefix)]}],
            "telecom": [{"system": "phone", "value": f"07700 900{r.randrange(1000):03d}", "use": "mobile"}],
            "gender": gender,
            "birthDate": self.date(1930, 2015),
            "address": [{
                "use": "home",
                "line": [f"{r.randrange(1, 250)} {r.choice(STREETS)}"],
                "city": town,
                "district": "Rutland" if district == "LE15" else "Leicestershire",
                "postalCode": f"{district} {r.randrange(1, 10)}{r.choice('ABDEFGHJLNPQRSTUWXYZ')}"
                              f"{r.choice('ABDEFGHJLNPQRSTUWXYZ')}",
                "country": "GB",
            }],
            "generalPractitioner": [{"identifier": {"system": ODS_SYSTEM, "value": ods}, "display": practice}],
        }
        return res, nhs

    def observation(self, pid: str) -> dict:
        r = self.rng
        code, display, kind, _ = r.choices(OBSERVATIONS, [o[3] for o in OBSERVATIONS])[0]
        vital = kind in ("hr", "bp", "weight", "bmi")
        cat = ("vital-signs", "Vital Signs") if vital else ("laboratory", "Laboratory") if kind == "hba1c" \
            else ("social-history", "Social History") if kind == "smoking" else ("survey", "Survey")
        res: dict = {
            "resourceType": "Observation",
            "id": self.uid(),
            "status": r.choices(("final", "amended", "preliminary"), (90, 5, 5))[0],
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                      "code": cat[0], "display": cat[1]}]}],
            "code": self.cc(LOINC, code, display),
            "subject": {"reference": f"Patient/{pid}"},
            "effectiveDateTime": self.when(),
        }
        ucum = "http://unitsofmeasure.org"
        if kind == "phq9":
            res["valueInteger"] = r.randrange(28)
        elif kind == "gad7":
            res["valueInteger"] = r.randrange(22)
        elif kind == "hr":
            res["valueQuantity"] = {"value": r.randrange(48, 130), "unit": "beats/minute", "system": ucum,
                                    "code": "/min"}
        elif kind == "weight":
            res["valueQuantity"] = {"value": round(r.uniform(40, 140), 1), "unit": "kg", "system": ucum,
                                    "code": "kg"}
        elif kind == "bmi":
            res["valueQuantity"] = {"value": round(r.uniform(16, 45), 1), "unit": "kg/m2", "system": ucum,
                                    "code": "kg/m2"}
        elif kind == "hba1c":
            res["valueQuantity"] = {"value": r.randrange(30, 110), "unit": "mmol/mol", "system": ucum,
                                    "code": "mmol/mol"}
        elif kind == "smoking":
            res["valueCodeableConcept"] = self.cc(SNOMED, *r.choice(
                [("266919005", "Never smoked tobacco"), ("77176002", "Smoker"), ("8517006", "Ex-smoker")]))
        elif kind == "bp":
            res["component"] = [
                {"code": self.cc(LOINC, "8480-6", "Systolic blood pressure"),
                 "valueQuantity": {"value": r.randrange(95, 180), "unit": "mmHg", "system": ucum, "code": "mm[Hg]"}},
                {"code": self.cc(LOINC, "8462-4", "Diastolic blood pressure"),
                 "valueQuantity": {"value": r.randrange(55, 110), "unit": "mmHg", "system": ucum, "code": "mm[Hg]"}},
            ]
        return res

    def encounter(self, pid: str) -> dict:
        r = self.rng
        start = self.when()
        inpatient = r.random() < 0.1
        code, display = r.choice(ENCOUNTER_TYPES)
        return {
            "resourceType": "Encounter",
            "id": self.uid(),
            "status": r.choices(("finished", "in-progress", "planned", "cancelled"), (80, 5, 10, 5))[0],
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                      "code": "IMP" if inpatient else "AMB", "display": "inpatient encounter" if inpatient
                      else "ambulatory"},
            "type": [self.cc(SNOMED, code, display)],
            "subject": {"reference": f"Patient/{pid}"},
            "period": {"start": start, "end": start[:11] + "19:30:00+00:00"},
            "serviceProvider": {"identifier": {"system": ODS_SYSTEM, "value": "RT5"},
                                "display": "Leicestershire Partnership NHS Trust"},
        }

    def service_request(self, pid: str) -> dict:
        r = self.rng
        code, display = r.choice(REFERRALS)
        return {
            "resourceType": "ServiceRequest",
            "id": self.uid(),
            "identifier": [{"system": "https://fhir.lpt.nhs.uk/Id/referral-id",
                            "value": f"REF{r.randrange(10**8):08d}"}],
            "status": r.choices([s for s, _ in SR_STATUS], [w for _, w in SR_STATUS])[0],
            "intent": "order",
            "priority": r.choices(("routine", "urgent", "asap"), (75, 20, 5))[0],
            "category": [self.cc(SNOMED, "3457005", "Patient referral")],
            "code": self.cc(SNOMED, code, display),
            "subject": {"reference": f"Patient/{pid}"},
            "authoredOn": self.when(),
            "reasonCode": [{"text": r.choice(["Low mood", "Anxiety and panic attacks", "Thoughts of self-harm",
                                              "Behaviour that challenges", "Memory concerns", "Psychosis"])}],
        }

    def condition(self, pid: str) -> dict:
        r = self.rng
        code, display = r.choice(CONDITIONS)
        active = r.random() < 0.7
        onset = self.when()
        return {
            "resourceType": "Condition",
            "id": self.uid(),
            "clinicalStatus": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                "code": "active" if active else "resolved"}]},
            "verificationStatus": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed"}]},
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category",
                                      "code": "problem-list-item", "display": "Problem List Item"}]}],
            "code": self.cc(SNOMED, code, display),
            "subject": {"reference": f"Patient/{pid}"},
            "onsetDateTime": onset,
            "recordedDate": onset[:10],
        }

    def care_plan(self, pid: str) -> dict:
        r = self.rng
        code, display = r.choice(CAREPLAN_CATS)
        start = self.date(2019, 2025)
        return {
            "resourceType": "CarePlan",
            "id": self.uid(),
            "status": r.choices(("active", "completed", "revoked", "draft"), (50, 35, 5, 10))[0],
            "intent": "plan",
            "category": [self.cc(SNOMED, code, display)],
            "title": display,
            "description": "Agreed with the patient and their carer at review.",
            "subject": {"reference": f"Patient/{pid}"},
            "period": {"start": start},
            "created": start,
        }


def _bisect(cum: list[int], x: int) -> int:
    lo, hi = 0, len(cum)
    while lo < hi:
        mid = (lo + hi) // 2
        if cum[mid] <= x:
            lo = mid + 1
        else:
            hi = mid
    return lo


def generate(out: Path, total: int, seed: int, samples: int = 2000) -> dict:
    g = Generator(seed)
    pick = random.Random(seed * 104729 + 3)  # sampling only: does not disturb the data stream
    n_patients = max(1, round(total * MIX["Patient"]))
    others = [t for t in MIX if t != "Patient"]
    other_weights = [MIX[t] for t in others]
    makers = {"Observation": g.observation, "Encounter": g.encounter, "ServiceRequest": g.service_request,
              "Condition": g.condition, "CarePlan": g.care_plan}
    counts = dict.fromkeys(MIX, 0)
    patient_ids: list[str] = []
    patient_sample: list[list[str]] = []
    sr_subjects: list[str] = []
    sr_seen = 0
    lastupdated_marker = None
    marker_at = int(n_patients * 0.9)
    tmp = out.with_name(out.name + ".part")
    t0 = time.monotonic()
    with tmp.open("wb") as fh:
        buf: list[bytes] = []
        for i in range(total):
            # Patients spread evenly through the file; each other resource refers to one already
            # written, mostly a recent one (records arrive in bursts per patient), sometimes any
            due_patients = (i + 1) * n_patients // total
            if counts["Patient"] < due_patients or not patient_ids:
                res, nhs = g.patient()
                patient_ids.append(res["id"])
                k = counts["Patient"]
                if k == marker_at:
                    lastupdated_marker = res["id"]
                # reservoir sample of (id, NHS number)
                if len(patient_sample) < samples:
                    patient_sample.append([res["id"], nhs])
                else:
                    j = pick.randrange(k + 1)
                    if j < samples:
                        patient_sample[j] = [res["id"], nhs]
                counts["Patient"] += 1
            else:
                rtype = g.rng.choices(others, other_weights)[0]
                if g.rng.random() < 0.8:
                    pid = patient_ids[-1 - g.rng.randrange(min(len(patient_ids), 50))]
                else:
                    pid = patient_ids[g.rng.randrange(len(patient_ids))]
                res = makers[rtype](pid)
                counts[rtype] += 1
                if rtype == "ServiceRequest":
                    if len(sr_subjects) < samples:
                        sr_subjects.append(pid)
                    else:
                        j = pick.randrange(sr_seen + 1)
                        if j < samples:
                            sr_subjects[j] = pid
                    sr_seen += 1
            buf.append(dumps(res))
            if len(buf) >= 5000:
                fh.write(b"\n".join(buf) + b"\n")
                buf = []
        if buf:
            fh.write(b"\n".join(buf) + b"\n")
    tmp.replace(out)
    manifest = {
        "tool": "carebridge-make-store", "generator_version": GENERATOR_VERSION, "seed": seed,
        "resources": total, "counts": counts, "file": str(out), "bytes": out.stat().st_size,
        "seconds": round(time.monotonic() - t0, 1),
        "patient_samples": patient_sample, "service_request_subjects": sorted(set(sr_subjects)),
        "lastupdated_marker_patient": lastupdated_marker or patient_ids[-1],
    }
    manifest_path(out).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def manifest_path(out: Path) -> Path:
    return out.with_name(out.name + ".manifest.json")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path, help="the NDJSON file to write")
    p.add_argument("--resources", type=int, default=1_000_000, help="how many resources (default 1,000,000)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--samples", type=int, default=2000, help="Patients and subjects kept in the manifest")
    args = p.parse_args(argv)
    if args.resources < 1 or args.resources > 4_000_000:
        p.error("--resources must be between 1 and 4,000,000 "
                "(Patients need unique NHS numbers; the 999 range holds ~909k)")
    m = generate(args.out, args.resources, args.seed, args.samples)
    print(f"make_store: {m['resources']:,} resources ({', '.join(f'{k} {v:,}' for k, v in m['counts'].items())}), "
          f"{m['bytes'] / 1e6:,.1f} MB in {m['seconds']} s -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
