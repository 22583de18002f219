"""Command line: ``radassist serve | ask | models ...``; the edge where errors become messages."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from assistant.cli.text import terminal_text
from assistant.errors import RadassistError
from assistant.settings import Settings, load_settings

logger = logging.getLogger(__name__)

# Each feature module adds its subcommand here: register(subparsers) sets func=run(args, settings) -> int.
Register = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]


def _registrars() -> list[Register]:
    from assistant.cli import audit as cli_audit
    from assistant.cli import calc as cli_calc
    from assistant.cli import chat as cli_chat
    from assistant.cli import eval as cli_eval
    from assistant.cli import index as cli_index
    from assistant.cli import ingest as cli_ingest
    from assistant.cli import models as cli_models
    from assistant.cli import pacs as cli_pacs
    from assistant.cli import priors as cli_priors
    from assistant.cli import report as cli_report
    from assistant.cli import users as cli_users

    return [
        cli_chat.register,
        cli_ingest.register,
        cli_calc.register,
        cli_index.register,
        cli_report.register,
        cli_pacs.register,
        cli_priors.register,
        cli_models.register,
        cli_users.register,
        cli_audit.register,
        cli_eval.register,
    ]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="radassist", description="Conversational assistant for radiology.")
    parser.add_argument("--config", type=Path, help="TOML settings file (default: $RADASSIST_CONFIG)")
    parser.add_argument("--data-dir", type=Path, help="data folder (default: ./data or $RADASSIST_DATA_DIR)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in _registrars():
        register(sub)
    return parser


PRIVATE_UMASK = 0o077  # files 0600, folders 0700: what radassist writes holds images, dictations, answers


def main(argv: Sequence[str] | None = None) -> int:
    # Owner-only whatever the caller's umask: the data dir, the database, the engine log (vLLM inherits it), indexes,
    # renderings and exports. Restored on return, for callers that run ``main`` in their own process (tests).
    previous = os.umask(PRIVATE_UMASK)
    try:
        return _main(argv)
    finally:
        os.umask(previous)


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        settings: Settings = load_settings(config_file=args.config, data_dir=args.data_dir)
        return int(args.func(args, settings))
    except RadassistError as exc:
        print(f"radassist: {terminal_text(exc)}", file=sys.stderr)  # may name a file: escapes shown
        return 2
    except KeyboardInterrupt:
        print("radassist: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (``radassist calc ... | head``): stop quietly, as Unix tools do. Point stdout at
        # /dev/null so that the interpreter's final flush does not raise again (Python docs, "SIGPIPE").
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a writer killed by the signal
    except Exception:  # the edge: unknown errors are logged with their traceback, shown briefly
        logger.exception("unexpected error")
        print("radassist: unexpected internal error (run with -v for details)", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
