"""``bastion tuf ...``: the signed-metadata commands (registered by ``bastion.cli``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _errors():  # type: ignore[no-untyped-def]
    from bastion.cli import CommandError

    return CommandError


def _setup() -> None:
    from bastion.cli import _setup_django

    _setup_django()


def cmd_init(args: argparse.Namespace) -> int:
    _setup()
    from bastion.signing import keys, services
    from bastion.signing.errors import SigningError

    directory = Path(args.keys_dir).expanduser().resolve()
    if args.root_threshold > args.root_keys:
        raise _errors()("--root-threshold cannot exceed --root-keys")
    try:
        existing = _existing_online_key(args)
        created = keys.generate_keys(directory, root_keys=args.root_keys, online=existing is None)
        online = existing or created.online
        assert created.targets is not None and online is not None
        services.initialize(
            root=created.root,
            root_threshold=args.root_threshold,
            targets=created.targets,
            online=online,
            bins=args.bins,
        )
    except SigningError as exc:
        raise _errors()(exc.message) from None
    if existing is None:
        online_text = "the online key"
        next_step = (
            f"set BASTION_TUF_ONLINE_KEY=file2:{directory / 'online.pem'} (or copy online.pem "
            "where every node reads it, or use a KMS/HSM/Vault signer URI)"
        )
    else:
        online_text = f"registered the online key {args.online_key.split('?')[0]}"
        next_step = f"set BASTION_TUF_ONLINE_KEY={args.online_key.split('?')[0]} on every node"
    print(
        f"created {args.root_keys} root key(s) (threshold {args.root_threshold}) and the targets "
        f"key in {directory}, {online_text}, and signed version 1 of the repository.\n"
        f"Next: {next_step}, then move root-*.pem and targets.pem offline. Publish "
        "/tuf/1.root.json to your users out of band.",
        file=sys.stderr,
    )
    return 0


def _existing_online_key(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The signer of ``--online-key URI`` with ``--online-public-key PEM``, or None."""
    from bastion.signing import keys

    if (args.online_key is None) != (args.online_public_key is None):
        raise _errors()("--online-key and --online-public-key go together")
    if args.online_key is None:
        return None
    return keys.existing_online_signer(args.online_key, Path(args.online_public_key))


def cmd_refresh(args: argparse.Namespace) -> int:
    _setup()
    from bastion.signing import keys, services
    from bastion.signing.errors import SigningError

    try:
        offline = keys.read_keys(Path(args.keys_dir)) if args.keys_dir else None
        report = services.refresh(offline=offline)
    except SigningError as exc:
        raise _errors()(exc.message) from None
    for warning in report.warnings:
        print(f"bastion: warning: {warning}", file=sys.stderr)
    roles = ", ".join(f"{role} v{version}" for role, version in report.published[:8])
    more = len(report.published) - 8
    print(
        f"re-signed {report.projects} lagging project(s); published "
        f"{len(report.published)} version(s){': ' + roles if roles else ''}"
        f"{f' and {more} more' if more > 0 else ''}; collected {report.collected} old row(s)"
    )
    return 0


def cmd_rotate_root(args: argparse.Namespace) -> int:
    _setup()
    from bastion.signing import keys, services
    from bastion.signing.errors import SigningError

    try:
        old = keys.read_keys(Path(args.old_keys_dir))
        new_dir = Path(args.keys_dir).expanduser().resolve()
        new_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        existing = sorted(new_dir.glob("root-*.pem"))
        if existing:
            raise _errors()(f"{new_dir} already holds root keys; use an empty directory")
        from securesystemslib.signer import CryptoSigner

        new = []
        for number in range(1, args.root_keys + 1):
            signer = CryptoSigner.generate_ed25519()
            keys._write_private(new_dir / f"root-{number}.pem", signer)
            new.append(signer)
        version = services.rotate_root(
            old_root=old.root, new_root=new, new_threshold=args.root_threshold
        )
    except SigningError as exc:
        raise _errors()(exc.message) from None
    print(f"published root version {version}, signed by the old and the new root keys ({new_dir})")
    return 0


def cmd_rotate_online_key(args: argparse.Namespace) -> int:
    _setup()
    from securesystemslib.signer import CryptoSigner

    from bastion.signing import keys, services
    from bastion.signing.errors import SigningError

    if (args.new_key is None) == (args.online_key is None):
        raise _errors()("give either --new-key FILE or --online-key URI --online-public-key PEM")
    out = Path(args.new_key).expanduser().resolve() if args.new_key else None
    if out is not None and out.exists():
        raise _errors()(f"{out} exists; name a new file for the new online key")
    try:
        offline = keys.read_keys(Path(args.keys_dir))
        if offline.targets is None:
            raise _errors()(f"{args.keys_dir} holds no targets.pem")
        signer = _existing_online_key(args)
        if signer is None:
            assert out is not None
            signer = CryptoSigner.generate_ed25519()
            out.parent.mkdir(parents=True, exist_ok=True)
            keys._write_private(out, signer)
        version = services.rotate_online_key(
            root_signers=offline.root, targets_signer=offline.targets, new_online=signer
        )
    except SigningError as exc:
        raise _errors()(exc.message) from None
    uri = f"file2:{out}" if out is not None else args.online_key.split("?")[0]
    print(
        f"published root version {version} with the new online key; point "
        f"BASTION_TUF_ONLINE_KEY at {uri} on every node now",
        file=sys.stderr,
    )
    return 0


def cmd_proxy(args: argparse.Namespace) -> int:
    from bastion.signing.proxy import serve

    serve(
        root=Path(args.root),
        index=args.index,
        host=args.host,
        port=args.port,
        cache_dir=Path(args.cache_dir) if args.cache_dir else None,
    )
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from bastion.signing.proxy import VerificationFailed, verify_file

    try:
        verdict = verify_file(
            Path(args.file),
            root=Path(args.root),
            index=args.index,
            target=args.target,
        )
    except VerificationFailed as exc:
        print(f"bastion: {args.file}: NOT verified: {exc}", file=sys.stderr)
        return 1
    print(verdict)
    return 0


def _online_key_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--online-key",
        metavar="URI",
        help="use this existing online key instead of creating one: a securesystemslib signer "
        "URI (file2:PATH, awskms:..., gcpkms:..., azurekms:..., hv:..., hsm:...)",
    )
    parser.add_argument(
        "--online-public-key", metavar="PEM", help="the public key of --online-key (PEM file)"
    )


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``tuf`` command and its actions to the ``bastion`` parser."""
    tuf = commands.add_parser(
        "tuf", help="signed repository metadata (TUF, PEP 458)"
    ).add_subparsers(dest="tuf_command", required=True, metavar="ACTION")

    init = tuf.add_parser("init", help="create offline root/targets keys and the online key")
    init.add_argument("--keys-dir", required=True, help="an empty directory, to take offline")
    init.add_argument("--root-keys", type=int, default=3, metavar="M")
    init.add_argument("--root-threshold", type=int, default=2, metavar="N")
    init.add_argument("--bins", type=int, default=None, help="default BASTION_TUF_BINS")
    _online_key_options(init)
    init.set_defaults(handler=cmd_init)

    refresh = tuf.add_parser("refresh", help="re-sign what lags or is about to expire (cron it)")
    refresh.add_argument("--keys-dir", help="offline keys, to re-sign root and targets too")
    refresh.set_defaults(handler=cmd_refresh)

    rotate = tuf.add_parser("rotate-root", help="new root keys, signed by the old threshold")
    rotate.add_argument("--old-keys-dir", required=True)
    rotate.add_argument("--keys-dir", required=True, help="an empty directory for the new keys")
    rotate.add_argument("--root-keys", type=int, default=3, metavar="M")
    rotate.add_argument("--root-threshold", type=int, default=2, metavar="N")
    rotate.set_defaults(handler=cmd_rotate_root)

    online = tuf.add_parser("rotate-online-key", help="replace the online key")
    online.add_argument("--keys-dir", required=True, help="the offline root and targets keys")
    online.add_argument("--new-key", help="file to write a new online key to")
    _online_key_options(online)
    online.set_defaults(handler=cmd_rotate_online_key)

    proxy = tuf.add_parser("proxy", help="a local index that verifies everything it serves")
    proxy.add_argument("--root", required=True, help="the trusted root.json, obtained out of band")
    proxy.add_argument("--index", required=True, help="the index URL, e.g. https://pypi.example")
    proxy.add_argument("--host", default="127.0.0.1")
    proxy.add_argument("--port", type=int, default=8458)
    proxy.add_argument("--cache-dir", help="where verified metadata is kept (default: temporary)")
    proxy.set_defaults(handler=cmd_proxy)

    verify = tuf.add_parser("verify", help="verify a downloaded distribution against the index")
    verify.add_argument("file")
    verify.add_argument("--root", required=True)
    verify.add_argument("--index", required=True)
    verify.add_argument("--target", help="its target path (default: found by its blake2b-256)")
    verify.set_defaults(handler=cmd_verify)
