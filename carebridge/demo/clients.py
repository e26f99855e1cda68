"""Registered SMART Backend Services clients for the demo data, one per kind of caller.

The demo Consents tell a story for each kind of caller (README, "Who sees what"). These
clients let a user play each part through the real flow, a signed assertion exchanged at
``POST /auth/token``, rather than through development tokens only: the trust's key worker
system, two GP practice systems (one of which may break the glass), the council's social
care system, a carer portal, a service user app and the trust's auditors.

Each client's key pair is a development key made on the first load under
``var/demo-clients/<client-id>/`` (``private-key.pem``, ``jwks.json``; ``var/`` is never
committed) and reused afterwards. Loading again registers nothing new and makes no key: a
registration is only rewritten when it differs from the one here (a new release, or a key
folder deleted), and it keeps its status, so a demo client someone disabled stays so.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from server.auth.client_keys import (
    JWKS_FILE,
    PRIVATE_KEY_FILE,
    generate_key,
    key_folders,
    public_jwks,
    read_private_key,
    write_jwks,
    write_key_pair,
)
from server.auth.clients import Client, ClientRegistry, check_client


def _demo(client_id: str, name: str, organization: str, scopes: tuple[str, ...], purposes: tuple[str, ...],
          may_assert: tuple[str, ...] = ()) -> Client:
    return Client(client_id=client_id, name=name, organization=organization, scopes=scopes,
                  purposes=purposes, may_assert=may_assert)


#: the callers of the README's "Who sees what", with the same organisations and people
DEMO_CLIENTS: tuple[Client, ...] = (
    _demo("demo-trust-epr", "Trust clinical system (demo)", "RT5", ("user/*.rs",), ("TREAT",), ("Practitioner/*",)),
    _demo("demo-gp-c82001", "GP system, Demo Road Medical Centre (demo)", "C82001",
          ("user/*.rs",), ("TREAT",), ("Practitioner/gp-patel",)),
    _demo("demo-gp-c82002", "GP system, Charnwood Demo Surgery (demo)", "C82002",
          ("user/*.rs",), ("TREAT", "BTG", "ETREAT"), ("Practitioner/gp-hughes",)),
    _demo("demo-la-leicester", "Social care, Leicester City Council (demo)", "E06000016", ("system/*.rs",), ("TREAT",)),
    _demo("demo-carer-portal", "Carers' portal (demo)", "RT5", ("user/*.rs",), ("FAMRQT",), ("RelatedPerson/*",)),
    _demo("demo-service-user-app", "Service user app (demo)", "RT5", ("patient/*.rs",), ("PATRQT",), ("Patient/*",)),
    _demo("demo-trust-audit", "Trust audit (demo)", "RT5", ("system/AuditEvent.rs",), ("HSYSADMIN",)),
)
#: the clients that sign with an RSA key (the rest EC P-384): one shows that both algorithms work
RSA_CLIENTS = frozenset({"demo-trust-epr"})


def demo_alg(client_id: str) -> str:
    return "RS384" if client_id in RSA_CLIENTS else "ES384"


def demo_key_jwks(folder: Path, alg: str) -> dict[str, Any]:
    """The public JWKS of the demo key in ``folder``, made there first when there is none.

    The private key is the truth: the JWKS is derived from it, so a lost ``jwks.json`` is
    written again rather than a new key made.
    """
    private = folder / PRIVATE_KEY_FILE
    if not private.exists():
        (folder / JWKS_FILE).unlink(missing_ok=True)  # a public half alone belongs to no key
        pem, jwks = generate_key(alg)
        try:
            write_key_pair(folder, pem, jwks)
            return jwks
        except FileExistsError:  # another process made it first: use that one
            pass
    jwks = public_jwks(read_private_key(private))
    if not (folder / JWKS_FILE).exists():
        write_jwks(folder, jwks)
    return jwks


def register_demo_clients(var_dir: Path, registry: ClientRegistry) -> list[str]:
    """Register every demo client whose registration is missing or differs; the ids written."""
    written: list[str] = []
    for demo in DEMO_CLIENTS:
        folder = key_folders(var_dir, demo.client_id)[0]
        wanted = check_client(replace(demo, jwks=demo_key_jwks(folder, demo_alg(demo.client_id))))
        current = registry.get(demo.client_id)
        if current is not None and _same_registration(current, wanted):
            continue
        registry.save(wanted)
        written.append(demo.client_id)
    return written


def _same_registration(a: Client, b: Client) -> bool:
    return (a.name, a.organization, a.scopes, a.purposes, a.may_assert, a.jwks, a.jwks_uri) == (
        b.name, b.organization, b.scopes, b.purposes, b.may_assert, b.jwks, b.jwks_uri)
