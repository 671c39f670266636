"""The `ledger` command line: `app` (the typer app) and `main` (the console script).

One module per command group, each importing only the leaves `app` (root options, State,
one-line errors), `options` (parsers, shared option types), `render` (escaping, values,
tables), `columns` (plain-text tables fitted to the terminal), `paging` (--limit/--after)
and `history` (history and time travel every entity shares), never each other;
this module adds them all to the root app, in the order `ledger --help` lists them.
"""

from adapters.cli.render import refuse_import

try:
    from adapters.cli import (
        audit,
        demo,
        domain,
        group,
        inventory,
        keypair,
        keys,
        policy,
        projections,
        serve,
        session,
        token,
        usage,
        user,
        workload,
    )
    from adapters.cli.app import app, main
except Exception as exc:  # any failure to load is one line, not a traceback: see render.error_line
    refuse_import(exc)

app.add_typer(policy.policy_app, name="policy")
app.add_typer(keypair.keypair_app, name="keypair")
app.command("demo")(demo.demo)
app.add_typer(group.group_app, name="group")
app.add_typer(domain.domain_app, name="domain")
app.add_typer(user.user_app, name="user")
app.add_typer(workload.workload_app, name="workload")
app.add_typer(inventory.kernel_app, name="kernel")
app.add_typer(inventory.vfolder_app, name="vfolder")
app.add_typer(inventory.endpoint_app, name="endpoint")
app.add_typer(projections.projections_app, name="projections")
app.command("audit")(audit.audit)
app.command("metrics")(audit.metrics)
app.command("verify")(audit.verify_chain)
app.command("compact")(keys.compact_tables)
app.add_typer(usage.usage_app, name="usage")
app.add_typer(session.session_app, name="session")
app.add_typer(token.token_app, name="token")
app.command("serve")(serve.serve)
app.add_typer(keys.keys_app, name="keys")
policy.policy_app.command("effective")(session.policy_effective)

__all__ = ["app", "main"]
