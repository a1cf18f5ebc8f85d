"""`opte`: the pipeline's command line (MEASURES.md section 11 is its contract).

Each sub-command is a thin wrapper over an importable function; heavy modules are
imported only when their sub-command runs, so `opte --help` is instant.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from datetime import date
from pathlib import Path

from measures.config import resolve_home
from measures.errors import OpteError

log = logging.getLogger("opte")


def _month(value: str) -> str:
    try:
        date.fromisoformat(value + "-01")
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a month as YYYY-MM, got {value!r}") from None
    return value


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got {value!r}") from None


def _fraction(value: str) -> float:
    try:
        f = float(value)
    except ValueError:
        f = float("nan")
    if not 0.0 <= f < 1.0:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {value}")
    return f


def cmd_synth(args: argparse.Namespace) -> int:
    from ingest.synth import resolve_period, synthesize

    start, end = resolve_period(args.start, args.end, args.years)
    summary = synthesize(
        out=Path(args.out), people=args.people, start=start, end=end,
        seed=args.seed, dirty=args.dirty, bad_files=args.bad_files,
    )
    print(summary)
    return 0


def cmd_land(args: argparse.Namespace) -> int:
    from ingest.landing import land_inbox

    report = land_inbox(Path(args.inbox), resolve_home(args.home))
    print(report.summary())
    if report.rejected_files:
        names = "; ".join(f"{r.file}: {r.reason}" for r in report.rejected_files)
        raise OpteError(f"{len(report.rejected_files)} file(s) rejected whole, the rest landed: {names}")
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from measures.build import build

    build(resolve_home(args.home), cutoff=args.cutoff, full_refresh=args.full_refresh, engine=args.engine)
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    from measures.publish import publish_month

    folder = publish_month(resolve_home(args.home), args.month, external=args.external)
    print(f"published {args.month} to {folder}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from measures.pipeline import run_month

    folder = run_month(resolve_home(args.home), args.month,
                       inbox=Path(args.inbox) if args.inbox else None, engine=args.engine)
    print(f"published {args.month} to {folder}")
    return 0


def cmd_backfill(args: argparse.Namespace) -> int:
    from measures.pipeline import backfill

    folders = backfill(resolve_home(args.home), args.from_month, args.to_month,
                       external=args.external, cutoff=args.cutoff, engine=args.engine)
    print(f"published {len(folders)} month(s): {folders[0].name} to {folders[-1].name}" if folders
          else "nothing to publish")
    return 0


def cmd_docs(args: argparse.Namespace) -> int:
    from measures.docs import write_docs

    page = write_docs(resolve_home(args.home))
    print(f"dbt documentation written to {page} (open it in a browser; no server needed)")
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse, but an argument error is one line on stderr (MEASURES.md section 11), no usage."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: {one_line(message)} (see `{self.prog} --help`)\n")


def one_line(text: object) -> str:
    return " ".join(str(text).split())


def _add_engine(p: argparse.ArgumentParser) -> None:
    p.add_argument("--engine", choices=("duckdb", "spark"), default="duckdb",
                   help="engine that builds the warehouse: duckdb (default, one machine) or spark "
                        "(needs `pip install .[spark]` and a Java runtime; see README, 'Spark')")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="opte",
        description="Benefit off-flow performance measures (OPtE, JOT points, cohort off-flow rates).",
    )
    parser.add_argument("--home", default=None,
                        help="folder holding lake/, warehouse.duckdb and publish/ "
                             "(default: $OPTE_HOME, else ./.opte_home)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("synth", help="write a synthetic inbox of extracts")
    p.add_argument("--out", required=True, help="inbox folder to write")
    p.add_argument("--people", type=int, default=5000, help="number of customers (default 5000)")
    p.add_argument("--start", type=_month, default=None, help="first month YYYY-MM (default 2008-04)")
    p.add_argument("--end", type=_month, default=None, help="last month YYYY-MM (default 2011-03)")
    p.add_argument("--years", type=int, default=None,
                   help="length in years (12 months each): from --start, else ending with --end "
                        "(--years 10: April 2001 to March 2011)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--dirty", type=_fraction, default=0.0,
                   help="fraction of bad rows to inject (landing quarantines them)")
    p.add_argument("--bad-files", action="store_true",
                   help="also write files that landing rejects whole")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("land", help="land every extract in an inbox into the lake")
    p.add_argument("--inbox", required=True, help="inbox folder (<inbox>/<dataset>/<dataset>_<YYYYMMDD>.csv)")
    p.set_defaults(func=cmd_land)

    p = sub.add_parser("build", help="build and test the warehouse with dbt")
    p.add_argument("--cutoff", type=_day, default=None,
                   help="data cut-off YYYY-MM-DD: use only extracts dated on or before it")
    p.add_argument("--full-refresh", action="store_true",
                   help="rebuild from an empty working database, every incremental table from the "
                        "whole lake (a build decides this itself when the dbt project, the cut-off or a "
                        "snapshot dataset changed, or when the previous build was killed or failed)")
    _add_engine(p)
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("publish", help="write one report month's published tables")
    p.add_argument("--month", required=True, type=_month, help="report month YYYY-MM")
    p.add_argument("--external", action="store_true",
                   help="disclosure-controlled files for release outside the department")
    p.set_defaults(func=cmd_publish)

    p = sub.add_parser("run", help="land, build and publish one month in one go")
    p.add_argument("--month", required=True, type=_month, help="report month YYYY-MM")
    p.add_argument("--inbox", default=None, help="inbox to land first (default: land nothing)")
    _add_engine(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("backfill", help="publish every month in a range")
    p.add_argument("--from", dest="from_month", required=True, type=_month, help="first month YYYY-MM")
    p.add_argument("--to", dest="to_month", required=True, type=_month, help="last month YYYY-MM")
    p.add_argument("--external", action="store_true", help="also write the external files")
    p.add_argument("--cutoff", type=_day, default=None,
                   help="data cut-off YYYY-MM-DD for the build: publish as of that date")
    _add_engine(p)
    p.set_defaults(func=cmd_backfill)

    p = sub.add_parser("docs", help="write the dbt documentation as one self-contained page")
    p.set_defaults(func=cmd_docs)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.func(args)
    except OpteError as exc:
        print(f"opte {args.command}: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"opte {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # last resort: one line, full detail only when asked for
        if args.verbose or os.environ.get("OPTE_DEBUG"):
            raise
        print(f"opte {args.command}: unexpected {type(exc).__name__}: {one_line(exc)} "
              "(rerun with -v for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
