"""`ledger keys ...`: the master key that wraps every subject's data key (issue 14).

`status` says where the master key comes from and how many subject keys it wraps;
`rotate` wraps every data key under a new master key in one transaction. The data keys
do not change, so no event is rewritten and the chain is untouched.

`ledger compact` (a top-level command, here beside the keys it protects) rewrites the
tables where an erased value can outlive its row: see `adapters.compaction`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from adapters.cli.app import state_of

keys_app = typer.Typer(no_args_is_help=True, help="The master key: where it comes from, rotating it.")


@keys_app.command("status")
def keys_status(ctx: typer.Context) -> None:
    """Where the master key comes from, and how many subject keys it wraps."""
    from adapters.store.keys import master_key_source

    state = state_of(ctx)
    with state.reading() as ledger:
        source = master_key_source(ledger.config)
        count = ledger.app.keys.count()
    state.output(
        {"master_key": source, "subject_keys": count},
        lambda: typer.echo(f"master key: {source}\nsubject keys: {count}"),
    )


@keys_app.command("rotate")
def keys_rotate(
    ctx: typer.Context,
    new_key_file_given: Annotated[
        str | None,  # not Path: typer reads '' as Path('.')
        typer.Option(
            "--new-key-file",
            metavar="PATH",
            help="A new file for the new master key (mode 0600). Required when LEDGER_MASTER_KEY is set; "
            "default for a SQLite ledger opened with its own key file: that file is replaced.",
        ),
    ] = None,
) -> None:
    """Wrap every subject key under a new master key, in one transaction.

    With LEDGER_MASTER_KEY set, the new key is written to --new-key-file: set the variable to
    file:PATH (or to the file's contents) before the next start; processes still on the old
    key are refused, never served garbage. A SQLite ledger with its own key file gets the
    new key in that file."""
    from adapters.compaction import Compacted, compact
    from adapters.store.keys import (
        KEYS_TABLE,
        MASTER_KEY_VARIABLE,
        MasterKey,
        default_key_file,
        pending_key_file,
        write_key_file,
    )
    from domain.errors import ConfigurationError, InvalidAPIParameters, LedgerError
    from domain.shown import plural

    state = state_of(ctx)
    new_key_file = None if new_key_file_given is None else Path(new_key_file_given)
    if new_key_file_given is not None and new_key_file is not None:
        # Said here, by its option: the store's own refusals name no option.
        got = None
        if not new_key_file_given.strip():
            got = "an empty path"
        elif new_key_file.is_dir():
            got = f"the directory {new_key_file_given!r}"
        elif new_key_file.exists() or new_key_file.is_symlink():
            got = f"{new_key_file_given!r}, which exists"
        elif not new_key_file.parent.is_dir():
            got = f"a path whose folder {str(new_key_file.parent)!r} does not exist"
        if got is not None:
            raise InvalidAPIParameters(f"must name a new file, got {got}", field="--new-key-file")
    new = MasterKey.generate()
    with state.ledger() as ledger:
        database = ledger.config.sqlite_path
        own_file = MASTER_KEY_VARIABLE not in os.environ and database is not None
        if new_key_file is None and not own_file:
            raise ConfigurationError(
                f"--new-key-file: required, since the master key comes from {MASTER_KEY_VARIABLE}"
                if MASTER_KEY_VARIABLE in os.environ
                else "--new-key-file: required for this ledger"
            )
        if new_key_file is None:
            assert database is not None
            target = pending_key_file(database)
            # Left by a rotation that died before it committed: the ledger opened with the
            # current key file (else the open would have finished that rotation), so this
            # key was never used.
            target.unlink(missing_ok=True)
        else:
            target = new_key_file
        write_key_file(target, new)  # first: should the rotation commit and we die, the key is on disk
        count = ledger.app.keys.rotate(new)
        # PostgreSQL keeps the rows' old versions, wrapped under the old master key: a
        # rotation for a leaked key must not leave them in the table's file.
        try:
            rewritten = compact(ledger.config, [KEYS_TABLE])
        except LedgerError as exc:  # the rotation is committed: its key file and answer must follow
            where_kept = KEYS_TABLE if ledger.config.kind == "postgresql" else "wal"
            rewritten = [Compacted(where_kept, 0.0, f"not rewritten: {exc}")]
    stale = None
    if new_key_file is None:
        assert database is not None
        os.replace(target, default_key_file(database))
        where = f"the key file {default_key_file(database)}"
    else:
        # Absolute: the advice is followed from wherever the next start runs.
        target = target.resolve()
        where = f"{target}: set {MASTER_KEY_VARIABLE}=file:{target} before the next start"
        if own_file:
            assert database is not None
            stale = str(default_key_file(database))
    answer: dict[str, object] = {"rotated": count, "master_key": where}
    if stale is not None:
        answer["stale_key_file"] = stale
    skipped = [f"{done.table} {done.skipped}" for done in rewritten if done.skipped]
    if skipped:
        answer["not_compacted"] = skipped

    def human() -> None:
        typer.echo(f"rotated {plural(count, 'subject key')}; the new master key is in {where}")
        if stale is not None:
            typer.echo(
                f"the old key file {stale} opens this ledger no more: remove it, or keep it only with "
                "the backups taken before this rotation (they need it)"
            )
        for line in skipped:
            typer.echo(f"the keys' old versions stay in the file until `ledger compact`: {line}")

    state.output(answer, human)


def compact_tables(ctx: typer.Context) -> None:
    """Rewrite the tables where erased values can outlive their rows. PostgreSQL keeps a
    deleted row's old version in the table's file until VACUUM FULL: this applies every
    erasure to the read models, then rewrites the subject keys, the cached HTTP responses and
    every read model's tables one by one (each locked while it is rewritten: reads of it
    wait). A table it could not empty (a transaction open since before the erasure still
    sees old rows, its lock not granted within 10 s, another role owns it) is reported and
    the command exits 1: run it again. SQLite zeroes what it deletes: its WAL is emptied
    into the file."""
    from adapters.cli.app import refuse_a_missing_ledger
    from adapters.cli.render import new_table, print_table

    state = state_of(ctx)
    refuse_a_missing_ledger(state.db, "nothing to compact")
    with state.ledger() as ledger:
        done = ledger.compact()
    skipped = [item for item in done if item.skipped]

    def human() -> None:
        if not done:  # an in-memory SQLite ledger: no file, and no page outlives a row
            typer.echo("nothing to compact: this ledger keeps no file (it lives in memory)")
            return
        table = new_table("table", "seconds", "result")
        for item in done:
            result = item.skipped or ("emptied into the database file" if item.table == "wal" else "rewritten")
            table.add_row(item.table, f"{item.seconds:.3f}", result)
        print_table(table)
        typer.echo(f"compacted {len(done) - len(skipped)} of {len(done)}")

    state.output([item.to_json() for item in done], human)
    if skipped:
        raise typer.Exit(1)
