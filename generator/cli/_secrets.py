"""``gen secrets``: age-encrypted secret files of a site
(set, rotate, show, list, keygen, materialize, kubekey-config).

Values are read from stdin (or a hidden prompt on a terminal), never from the command line, and are
printed only by ``show`` and ``materialize`` (``kubekey-config`` writes them to a 0600 file), which
need a private key the engineer holds.
"""

from __future__ import annotations

import getpass
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from generator.cli import (
    LegacyFormatOption,
    OutputOption,
    RootOption,
    TextOrJson,
    app,
    complete_targets,
    output,
    output_format,
    print_json,
    run,
)

if TYPE_CHECKING:
    from generator.formats import age as crypto

secrets_app = typer.Typer(
    name="secrets",
    no_args_is_help=True,
    help="Secrets encrypted with age to each site's key: the inventory holds ?{age:<path>} "
    "references, secrets/<site>/<path>.age the ciphertext (docs/secrets.md).",
)
app.add_typer(secrets_app)

SiteOption = Annotated[
    str,
    typer.Option(
        "--target",
        "-t",
        help="The site whose secret it is.",
        autocompletion=complete_targets,
        metavar="SITE",
    ),
]
PathArgument = Annotated[
    str,
    # Described in the docstrings: help lists no arguments (kubectl's style, no type labels).
    typer.Argument(metavar="PATH", hidden=True),
]
IdentityOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--identity",
        "-i",
        envvar="GEN_AGE_IDENTITY",
        exists=True,
        dir_okay=False,
        help="age identity file (or unencrypted OpenSSH private key) that can decrypt; repeatable.",
        metavar="FILE",
    ),
]
GenerateOption = Annotated[
    int,
    typer.Option(
        "--generate",
        min=0,
        help="Store a random value of this many letters and digits instead of reading one.",
        metavar="N",
    ),
]
KeepNewlineOption = Annotated[
    bool,
    typer.Option(
        "--keep-newline",
        help="Keep a trailing newline of the value read from stdin (dropped by default).",
    ),
]


@secrets_app.command("set")
def set_(
    target: SiteOption,
    path: PathArgument,
    root: RootOption = Path("."),
    generate: GenerateOption = 0,
    keep_newline: KeepNewlineOption = False,
) -> None:
    """Store a new secret, encrypted to the site's recipients (and team recipients).

    PATH is the secret's path, as in ?{age:<path>}, e.g. redis/password. The value comes from
    stdin (a hidden prompt on a terminal); it is never an argument. Examples:

    \b
      printf %s "$REDIS_PASSWORD" | gen secrets set -t cn-east-1 redis/password
      gen secrets set -t cn-east-1 registry/password            # prompts, hidden
      gen secrets set -t cn-east-1 redis/password --generate 32
    """
    from generator.build import secret_store as store

    value = run(lambda: store.generate(generate)) if generate else _read_value(path, keep_newline)
    file = run(lambda: store.set_value(root, target, path, value))
    output().echo(f"stored {file}; reference it as ?{{age:{path}}} and run gen compile")


@secrets_app.command("rotate")
def rotate(
    target: SiteOption,
    path: Annotated[
        str | None,
        typer.Argument(metavar="PATH", hidden=True),
    ] = None,
    root: RootOption = Path("."),
    generate: GenerateOption = 0,
    keep_newline: KeepNewlineOption = False,
    reencrypt: Annotated[
        bool,
        typer.Option(
            "--reencrypt",
            help="Keep the value; encrypt it again to the recipients the inventory lists now "
            "(after adding or removing a key). Needs --identity.",
        ),
    ] = False,
    identity: IdentityOption = None,
) -> None:
    """Change a secret's value (or, with --reencrypt, its recipients); compile to carry the new ciphertext.

    PATH is the secret's path, as in ?{age:<path>}; with --reencrypt and no PATH, every secret of
    the site.

    \b
    printf %s "$NEW" | gen secrets rotate -t cn-east-1 redis/password
    gen secrets rotate -t cn-east-1 --reencrypt -i ~/.config/gen/me.key
    """  # noqa: E501 (the first line is the one-line help in `gen secrets -h`: kept whole)
    from generator.build import secret_store as store

    out = output()
    if reencrypt:
        keys = _identities(identity)
        files = run(lambda: store.reencrypt(root, target, [path] if path else [], keys))
        for file in files:
            out.echo(f"re-encrypted {file}")
        return
    if path is None:
        raise typer.BadParameter(
            "name the secret to rotate (or use --reencrypt)", param_hint="PATH"
        )
    value = run(lambda: store.generate(generate)) if generate else _read_value(path, keep_newline)
    file = run(lambda: store.set_value(root, target, path, value, replace=True))
    out.echo(
        f"rotated {file}; run gen compile (gen diff shows the secret as changed, never its value)"
    )


@secrets_app.command("show")
def show(
    target: SiteOption,
    path: PathArgument,
    identity: IdentityOption = None,
    root: RootOption = Path("."),
) -> None:
    """Print a secret's value (decrypted with your identity) on stdout, as stored.

    PATH is the secret's path, as in ?{age:<path>}, e.g. redis/password.

    gen secrets show -t cn-east-1 redis/password -i ~/.config/gen/me.key
    """
    from generator.build import secret_store as store

    keys = _identities(identity)
    value = run(lambda: store.show(root, target, path, keys))
    sys.stdout.buffer.write(value)
    sys.stdout.buffer.flush()


@secrets_app.command("list")
def list_(
    target: SiteOption,
    root: RootOption = Path("."),
    output_fmt: OutputOption = None,
    legacy_fmt: LegacyFormatOption = None,
) -> None:
    """List a site's secrets: referenced and stored, and each file's state (no key needed).

    States: ok; missing (referenced, no file); unused (file, no reference); damaged; stale
    (encrypted to another number of keys than the inventory lists: gen secrets rotate --reencrypt).
    """
    from generator.build import secret_store as store

    fmt = output_format(output_fmt, legacy_fmt, TextOrJson.text)
    entries = run(lambda: store.listing(root, target))
    if fmt is TextOrJson.json:
        print_json({"target": target, "secrets": [store.as_dict(e) for e in entries]})
    else:
        out = output()
        for e in entries:
            role = "ok" if e.state == "ok" else "warning"
            where = ", ".join(e.references) or "-"
            out.echo(
                f"{e.path}  {out.paint()(e.state, role)}  {e.file}  "
                f"recipients: {e.recipients}  used at: {where}"
            )
    if any(e.state != "ok" for e in entries):
        raise typer.Exit(1)


@secrets_app.command("keygen")
def keygen(
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            dir_okay=False,
            help="Identity file to create (mode 0600; never overwritten).",
            metavar="OUT",
        ),
    ],
    comment: Annotated[
        str, typer.Option("--comment", help="A comment line in the file.", metavar="COMMENT")
    ] = "",
) -> None:
    """Make an age key pair: the private identity goes to --out, the public recipient to stdout.

    For a site: run it at installation, create the agent's key Secret from the file
    (docs/secrets.md), put the printed recipient in site.secrets.recipients, and keep no other copy
    of the file.
    """
    from generator.build import secret_store as store

    typer.echo(run(lambda: store.keygen(out, comment)))


@secrets_app.command("materialize")
def materialize(
    target: SiteOption, identity: IdentityOption = None, root: RootOption = Path(".")
) -> None:
    """Print the site's Secrets, decrypted from compiled/<site>/, as YAML (plain text: pipe it on).

    What the agent does at apply time, for a cluster without it:

    \b
      gen secrets materialize -t cn-east-1 -i site.key | kubectl apply --server-side -f -
    """
    from generator.build import secret_store as store
    from generator.core import yamlio

    keys = _identities(identity)
    secrets = run(lambda: store.materialized(root, target, keys))
    sys.stdout.write(yamlio.dump_all(secrets))


@secrets_app.command("kubekey-config")
def kubekey_config(
    target: SiteOption,
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", dir_okay=False, help="File to write (mode 0600, replaced atomically)."
        ),
    ],
    identity: IdentityOption = None,
    root: RootOption = Path("."),
) -> None:
    """Write the site's KubeKey Cluster with its passwords and keys decrypted, for kk.

    Inside the site, with the site's key, from compiled/<site>/kubekey-cluster.yaml and
    kubekey-secrets.json; the file holds plain-text passwords: only its owner can read it
    (mode 0600). Remove it once the cluster is installed:

      gen secrets kubekey-config -t cn-east-1 -i site.key -o config.yaml
      kk create cluster -f config.yaml -a artifact.tar.gz --with-packages
    """
    from generator.build import kubekey_config as config

    keys = _identities(identity)
    run(lambda: config.write(root, target, keys, out))
    output().echo(f"wrote {out} (mode 0600): kk create cluster -f {out}; remove it afterwards")


def _identities(paths: list[Path] | None) -> crypto.Identities:
    from generator.formats import age as crypto

    if not paths:
        raise typer.BadParameter(
            "needs a private key: --identity FILE or GEN_AGE_IDENTITY", param_hint="--identity"
        )
    loaded = run(lambda: [crypto.load_identities(p) for p in paths])
    return crypto.Identities(
        tuple(k for i in loaded for k in i.keys),
        ", ".join(i.source for i in loaded),
        tuple(k for i in loaded for k in i.public),
    )


def _read_value(path: str, keep_newline: bool) -> bytes:
    """The value from stdin, or from a hidden prompt (asked twice) on a terminal."""
    if sys.stdin.isatty():
        first = getpass.getpass(f"value of {path}: ")
        if getpass.getpass("again: ") != first:
            output().echo("the two values differ; nothing stored", err=True)
            raise typer.Exit(1)
        return first.encode()
    value = sys.stdin.buffer.read()
    if not keep_newline:
        value = (
            value[:-2]
            if value.endswith(b"\r\n")
            else value[:-1]
            if value.endswith(b"\n")
            else value
        )
    return value
