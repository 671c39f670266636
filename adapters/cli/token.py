"""`ledger token ...`: bearer tokens for the HTTP API (issue 13).

The CLI is the root of trust: whoever can open the ledger's database issues tokens (the
root actor options default to superadmin), while over HTTP only a superadmin token may.
`issue` prints the token once; the ledger keeps only its SHA-256 hash, so a lost token
is revoked and issued again, never shown again. `list` shows neither tokens nor hashes.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Annotated

import typer

from adapters.cli.app import RoleChoice, state_of
from adapters.cli.render import fmt, new_table, print_table
from domain.catalog import EntityType

if TYPE_CHECKING:
    from adapters.bootstrap import Ledger
    from domain.token import TokenData

token_app = typer.Typer(
    no_args_is_help=True,
    help="Bearer tokens for the HTTP API: issue (shown once), list, revoke.",
)

TOKEN_TYPE = EntityType.TOKEN
ISSUED_TOPIC = "domain.token.aggregate:Token.TokenIssued"
_PAGE = 1000

# A str, parsed by the action: typed as a UUID, a bad one was refused in pydantic's words
# ("Input should be a valid UUID, ..."), exit 2, where every other UUID option names it.
HolderOption = Annotated[
    str,
    typer.Option("--user-id", metavar="UUID", help="The token's holder: a live user of --domain (not the actor)."),
]
HolderRoleOption = Annotated[
    RoleChoice,
    typer.Option(
        "--role",
        metavar="ROLE",
        case_sensitive=False,  # as the HTTP API reads a token's role: SUPERADMIN is superadmin
        help="The role the token acts as: superadmin, admin, user or service.",
    ),
]
HolderDomainOption = Annotated[str, typer.Option("--domain", metavar="DOMAIN", help="The holder's domain.")]
HolderKeyOption = Annotated[
    str | None,
    typer.Option("--access-key", metavar="KEY", help="A keypair of the holder the token acts through."),
]
ExpiresInOption = Annotated[
    str | None,
    typer.Option(
        "--expires-in", metavar="DURATION", help="Lifetime: 30d, 12h, 90m or 45s (at most 3650d). Default: none."
    ),
]
NameOption = Annotated[str | None, typer.Option("--name", metavar="TEXT", help="What the token is for, as listed.")]


def token_json(token: TokenData) -> dict[str, object]:
    return token.to_json()


@token_app.command("issue")
def token_issue(
    ctx: typer.Context,
    user_id: HolderOption,
    role: HolderRoleOption,
    domain_name: HolderDomainOption,
    access_key: HolderKeyOption = None,
    expires_in: ExpiresInOption = None,
    name: NameOption = None,
) -> None:
    """Issue a token and print it once: store it now, the ledger keeps only its hash.

    The options after `issue` describe the token's holder; the root options before
    `token` (`ledger --role superadmin token issue --role user ...`) are the actor issuing it."""
    from domain.token import IssueTokenAction

    state = state_of(ctx)
    action = IssueTokenAction(
        user_id=user_id,
        role=role.value,
        domain_name=domain_name,
        access_key=access_key,
        expires_in=expires_in,
        name=name,
    )
    with state.ledger() as ledger:
        result = state.run(ledger.processors.token.issue_token, action)

    def human() -> None:
        typer.echo(f"issued token {result.data.token_id} (shown once; the ledger keeps only its hash):")
        typer.echo(result.token)

    state.output({"token": result.token, **token_json(result.data)}, human)


def issued_tokens(ledger: Ledger) -> list[TokenData]:
    """Every token ever issued, in issue order, as it stands now (read from their streams:
    tokens are few, and this keeps the hash out of every read model)."""
    from domain.token import Token

    recorder = ledger.app.recorder
    ids: list[uuid.UUID] = []
    start = 1
    while True:
        page = recorder.select_notifications(start=start, limit=_PAGE, topics=[ISSUED_TOPIC])
        ids.extend(uuid.UUID(str(n.originator_id)) for n in page)
        if len(page) < _PAGE:
            break
        start = page[-1].id + 1
    tokens = (ledger.app.store.get(token_id, Token) for token_id in ids)
    return [token.data() for token in tokens if token is not None]


@token_app.command("list")
def token_list(
    ctx: typer.Context,
    all_tokens: Annotated[bool, typer.Option("--all", help="Revoked tokens too.")] = False,
) -> None:
    """List the tokens (live ones unless --all): id, holder, role, domain, name, expiry,
    revocation. Never a token or its hash."""
    state = state_of(ctx)
    with state.reading() as ledger:
        tokens = [t for t in issued_tokens(ledger) if all_tokens or t.revoked_at is None]
    columns = ("token_id", "user_id", "role", "domain_name", "name", "expires_at", "revoked_at")

    def human() -> None:
        table = new_table("id", "user", "role", "domain", "name", "expires", "revoked", whole=("id", "user"))
        for token in tokens:
            data = token.to_json()
            table.add_row(*(fmt(c, data[c]) for c in columns))
        print_table(table)

    state.output([token_json(t) for t in tokens], human)


@token_app.command("revoke")
def token_revoke(
    ctx: typer.Context,
    token_id: Annotated[str, typer.Argument(metavar="ID", help="The token's id (from issue or list).")],
) -> None:
    """Revoke a token: from now on it authenticates no one. Cannot be undone."""
    from domain.token import RevokeTokenAction

    state = state_of(ctx)
    with state.ledger() as ledger:
        result = state.run(ledger.processors.token.revoke_token, RevokeTokenAction(token_id=token_id))
    state.output(token_json(result.data), lambda: typer.echo(f"revoked token {token_id}"))
