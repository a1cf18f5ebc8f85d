"""Mutation testing of the dbt rules: plant each catalogued bug, see the tests catch it.

Each rule of MEASURES.md comes with a catalogue of plausible bugs, kept beside it: a file
`<name>.mutations.yml` next to the SQL it attacks (`int_spells.sql` -> `int_spells.mutations.yml`),
`dbt_project.mutations.yml` for the vars in `dbt_project.yml`, `<macro file>.mutations.yml` for
a macro. dbt never reads them (`dbt_project/.dbtignore`). A mutation is one exact textual edit:

    mutations:
      - id: spell_office_largest          # unique over the whole catalogue
        rule: "5: spell office = the first claim's office"   # MEASURES.md section: the rule
        kind: aggregate                   # var | comparison | precedence | tie_break | aggregate | logic
        find: "max(case when is_spell_first_claim then office_code end) as office_code"
        replace: "max(office_code) as office_code"
        select: [int_spells]              # optional: the models it exercises (default: derived)
        equivalent: "why no output can change"   # optional: a survivor that is expected

`find` must occur exactly once in the target file (the anchor); `--check` validates every
anchor without running dbt, and says which no longer match after a rewrite.

A run works on a copy of the dbt project in a workspace folder (the repository is never
edited, so an interrupted run leaves nothing behind): it lands the bundled sample inbox there
and builds it once (the baseline, which must pass), then for each mutant, one at a time:

  1. applies the edit to the copy;
  2. runs the unit tests of the models it exercises (`dbt test -s "m,test_type:unit"`: fixtures
     only, a few seconds);
  3. only when they all pass: rebuilds those models and all their children on a fresh copy of
     the baseline warehouse, with every data test (`dbt build -s m+`, unit tests excluded, as
     step 2 ran them), so that an invariant downstream on the sample can still kill it;
  4. restores the file (and the warehouse), and records killed / survived / invalid (the
     mutant does not compile or run: a catalogue bug) with the failing tests and the time.

The kill table is written as markdown (`--report`). Exit status 0 when every mutant not marked
`equivalent` is killed and none is invalid.

    .venv/bin/python scripts/mutate.py --check          # anchors only, no dbt (seconds)
    .venv/bin/python scripts/mutate.py --list
    .venv/bin/python scripts/mutate.py --report docs/MUTATION_REPORT.md
    .venv/bin/python scripts/mutate.py --only spell_office_largest,cutoff_latest_dataset
    .venv/bin/python scripts/mutate.py --report docs/MUTATION_REPORT.md --update   # re-run its survivors
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
DBT_PROJECT = REPO / "dbt_project"
SUFFIX = ".mutations.yml"
KINDS = {"var", "comparison", "precedence", "tie_break", "aggregate", "logic"}
KEYS = {"id", "rule", "kind", "find", "replace", "select", "equivalent"}


# a dbt error that means the mutant is not valid SQL (a catalogue bug), not a bug the tests caught;
# any other error (a conversion, a division, an out-of-range value on a test's data) is caught
BROKEN_SQL = re.compile(r"Parser Error|Binder Error|Catalog Error|Compilation Error|syntax error|not found|"
                        r"Contract Error|does not exist", re.IGNORECASE)


class CatalogueError(Exception):
    """A catalogue entry that cannot be applied as written."""


@dataclass
class Mutation:
    id: str
    rule: str
    kind: str
    find: str
    replace: str
    catalogue: Path          # the .mutations.yml file
    target: Path             # the file it edits
    select: list[str] = field(default_factory=list)
    equivalent: str | None = None

    def rel_target(self, project: Path) -> str:
        return self.target.relative_to(project).as_posix()

    def apply(self, text: str) -> str:
        """The target's text with the edit made; CatalogueError unless the anchor is there once."""
        n = text.count(self.find)
        if n != 1:
            raise CatalogueError(anchor_problem(self, n))
        return text.replace(self.find, self.replace, 1)


def anchor_problem(m: Mutation, count: int) -> str:
    first = m.find.strip().splitlines()[0] if m.find.strip() else m.find
    what = "no longer matches" if count == 0 else f"matches {count} times (must be once)"
    return (f"{m.catalogue.name}: mutation {m.id}: anchor {what} in {m.target.name}: {first!r}; "
            f"re-anchor it on the rule's new text (or remove it with the rule)")


# ---------------------------------------------------------------- the catalogue


def target_of(catalogue: Path) -> Path:
    stem = catalogue.name[: -len(SUFFIX)]
    if stem == "dbt_project":
        return catalogue.with_name("dbt_project.yml")
    return catalogue.with_name(stem + ".sql")


def load_catalogue(project: Path = DBT_PROJECT) -> tuple[list[Mutation], list[str]]:
    """Every mutation under `project`, and the problems met reading them (file: what)."""
    mutations, problems = [], []
    for path in sorted(project.rglob("*" + SUFFIX)):
        if "target" in path.relative_to(project).parts:
            continue
        try:
            doc = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            problems.append(f"{path.relative_to(project)}: not valid YAML: {exc}".replace("\n", " "))
            continue
        target = target_of(path)
        if not target.exists():
            problems.append(f"{path.relative_to(project)}: the file it attacks, {target.name}, does not exist")
            continue
        for i, entry in enumerate(doc.get("mutations") or []):
            where = f"{path.relative_to(project)} entry {i + 1}"
            if not isinstance(entry, dict):
                problems.append(f"{where}: not a mapping")
                continue
            missing = [k for k in ("id", "rule", "kind", "find", "replace") if not entry.get(k)]
            unknown = sorted(set(entry) - KEYS)
            if missing or unknown:
                problems.append(f"{where}: " + "; ".join(
                    ([f"missing {', '.join(missing)}"] if missing else []) +
                    ([f"unknown key(s) {', '.join(unknown)}"] if unknown else [])))
                continue
            if entry["kind"] not in KINDS:
                problems.append(f"{where} ({entry['id']}): kind {entry['kind']!r} is not one of {sorted(KINDS)}")
                continue
            select = entry.get("select") or []
            mutations.append(Mutation(id=str(entry["id"]), rule=str(entry["rule"]), kind=entry["kind"],
                                      find=str(entry["find"]), replace=str(entry["replace"]), catalogue=path,
                                      target=target, select=[str(s) for s in select],
                                      equivalent=entry.get("equivalent")))
    return mutations, problems


def model_files(project: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted((project / "models").rglob("*.sql"))}


def macros_defined(path: Path) -> list[str]:
    return re.findall(r"{%-?\s*macro\s+(\w+)\s*\(", path.read_text())


def exercised_models(m: Mutation, project: Path, models: dict[str, Path]) -> list[str]:
    """The models a mutation changes: its own model; for a macro file, the models calling one of
    its macros; for a var in dbt_project.yml, the models reading the var (directly or through a
    macro that reads it)."""
    if m.select:
        return list(m.select)
    rel = m.target.relative_to(project)
    if rel.parts[0] == "models":
        return [m.target.stem]
    texts = {name: path.read_text() for name, path in models.items()}
    if rel.parts[0] == "macros":
        names = macros_defined(m.target)
        return sorted(n for n, t in texts.items() if any(re.search(rf"\b{x}\s*\(", t) for x in names))
    if rel.name == "dbt_project.yml":
        var = re.match(r"\s*(\w+)\s*:", m.find)
        if not var:
            raise CatalogueError(f"{m.catalogue.name}: mutation {m.id}: a dbt_project.yml mutation must anchor on "
                                 "`name: value` of one var, or say `select:`")
        name = var.group(1)
        uses = re.compile(rf"var\(\s*['\"]{name}['\"]")
        macro_names = [x for p in sorted((project / "macros").glob("*.sql")) if uses.search(p.read_text())
                       for x in macros_defined(p)]
        return sorted(n for n, t in texts.items()
                      if uses.search(t) or any(re.search(rf"\b{x}\s*\(", t) for x in macro_names))
    raise CatalogueError(f"{m.catalogue.name}: mutation {m.id}: say `select:` (no rule to derive its models)")


def check(project: Path = DBT_PROJECT, out=sys.stdout) -> int:
    """Validate every anchor and selection without running dbt. 0 when all are sound."""
    mutations, problems = load_catalogue(project)
    models = model_files(project)
    seen: dict[str, Path] = {}
    texts: dict[Path, str] = {}
    for m in mutations:
        if m.id in seen:
            problems.append(f"{m.catalogue.name}: mutation id {m.id} is also used in {seen[m.id].name}")
        seen.setdefault(m.id, m.catalogue)
        text = texts.setdefault(m.target, m.target.read_text())
        n = text.count(m.find)
        if n != 1:
            problems.append(anchor_problem(m, n))
        elif m.find == m.replace or m.apply(text) == text:
            problems.append(f"{m.catalogue.name}: mutation {m.id}: the edit changes nothing")
        try:
            selected = exercised_models(m, project, models)
        except CatalogueError as exc:
            problems.append(str(exc))
            continue
        unknown = [s for s in selected if s not in models]
        if unknown or not selected:
            problems.append(f"{m.catalogue.name}: mutation {m.id}: "
                            + (f"select names no model: {', '.join(unknown)}" if unknown else "exercises no model"))
    for p in problems:
        print(f"mutate --check: {p}", file=out)
    files = len({m.catalogue for m in mutations})
    print(f"mutate --check: {len(mutations)} mutation(s) in {files} catalogue file(s); "
          + ("every anchor matches once" if not problems else f"{len(problems)} problem(s)"), file=out)
    return 0 if not problems and mutations else 1


# ---------------------------------------------------------------- running dbt


class Interrupted(BaseException):
    """SIGTERM or SIGHUP: stop like Ctrl-C (a BaseException, so that no `except Exception` in dbt
    takes it for a failing test)."""


def release_warehouse() -> None:
    """Close dbt-duckdb's process-wide DuckDB connection, so that the warehouse file can be
    replaced by the baseline's copy and the next invocation opens it afresh."""
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    except ImportError:
        return
    env = DuckDBConnectionManager._ENV
    if env is not None:
        try:
            env.close()
        finally:
            DuckDBConnectionManager._ENV = None


def _on_signal(signum, frame):
    raise Interrupted(signal.Signals(signum).name)


@dataclass
class Outcome:
    mutation: Mutation
    status: str              # killed | survived | invalid | equivalent
    stage: str               # unit | build | -
    detail: str
    seconds: float


class Workspace:
    """A copy of the dbt project with the sample landed and a baseline warehouse."""

    def __init__(self, root: Path, threads: int, memory_limit: str, log):
        self.root, self.threads, self.log = root, threads, log
        self.project = root / "dbt_project"
        self.home = root / "home"
        self.pristine = root / "baseline.duckdb"
        self.env = dict(os.environ, OPTE_HOME=str(self.home), OPTE_DUCKDB_MEMORY_LIMIT=memory_limit,
                        DBT_SEND_ANONYMOUS_USAGE_STATS="false")

    @property
    def warehouse(self) -> Path:
        """dbt's target: the build's working database (`<home>/.build/work.duckdb`)."""
        sys.path.insert(0, str(REPO))
        from measures.config import work_database_path
        return work_database_path(self.home)

    def project_digest(self) -> str:
        digest = hashlib.sha256()
        for p in sorted(DBT_PROJECT.rglob("*")):
            rel = p.relative_to(DBT_PROJECT)
            if p.is_file() and rel.parts[0] not in ("target", "logs", "dbt_packages") and not p.name.endswith(SUFFIX):
                digest.update(rel.as_posix().encode() + b"\0" + p.read_bytes())
        return digest.hexdigest()

    def prepare(self) -> None:
        """Copy the project; land the sample and build the baseline unless the workspace has one
        of this very project (a kept workspace is reused)."""
        self.root.mkdir(parents=True, exist_ok=True)
        if self.project.exists():
            shutil.rmtree(self.project)
        shutil.copytree(DBT_PROJECT, self.project,
                        ignore=shutil.ignore_patterns("target", "logs", "dbt_packages", ".user.yml"))
        stamp = self.root / "baseline.sha256"
        digest = self.project_digest()
        if self.pristine.exists() and stamp.exists() and stamp.read_text() == digest:
            self.log("mutate: reusing the baseline warehouse of this project in the workspace")
            return
        if not (self.home / "lake").exists():
            sys.path.insert(0, str(REPO))
            from ingest.landing import land_inbox
            from measures.config import SAMPLE_INBOX
            self.log(f"mutate: landing the sample inbox into {self.home}")
            report = land_inbox(SAMPLE_INBOX, self.home)
            if report.rejected_files:
                raise SystemExit(f"mutate: landing the sample rejected files: {report.summary()}")
        self.log("mutate: building the baseline warehouse (full dbt build of the unmutated copy; must pass)")
        self.warehouse.parent.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        code, failed = self.dbt(["build"])
        if code != 0:
            raise SystemExit("mutate: the unmutated project does not build and test cleanly, so no mutant can be "
                             f"judged: {', '.join(failed) or 'see ' + str(self.root / 'logs' / 'dbt.log')}")
        shutil.copyfile(self.warehouse, self.pristine)
        stamp.write_text(digest)
        self.log(f"mutate: baseline built in {time.perf_counter() - t:.0f} s")

    def dbt(self, args: list[str]) -> tuple[int, list[str]]:
        """Run dbt in the copy; its exit code and the nodes that failed or errored (status: name).

        dbt runs in this process (dbtRunner), one invocation after another: a mutant costs its
        parse and its tests, not a Python start-up and dbt's imports each time (on a busy machine,
        most of a subprocess's time). Its console output goes to <workspace>/dbt_console.log.
        """
        from dbt.cli.main import dbtRunner

        os.environ.update(self.env)
        cli = [*args, "--project-dir", str(self.project), "--profiles-dir", str(self.project),
               "--target-path", str(self.root / "target"), "--log-path", str(self.root / "logs"),
               "--threads", str(self.threads), "--vars", json.dumps({"lake_root": str(self.home / "lake")})]
        with open(self.root / "dbt_console.log", "a") as console, \
                contextlib.redirect_stdout(console), contextlib.redirect_stderr(console):
            try:
                outcome = dbtRunner().invoke(cli)
            finally:
                release_warehouse()
        if isinstance(outcome.exception, (KeyboardInterrupt, Interrupted)):
            raise outcome.exception
        failed = []
        for r in getattr(outcome.result, "results", None) or []:
            status = str(getattr(r.status, "value", r.status))
            if status == "error" and not BROKEN_SQL.search(str(getattr(r, "message", "") or "")):
                status = "data error"  # the mutant runs, and fails on the test's data: caught
            if status in ("fail", "error", "data error"):
                failed.append(f"{status}: {r.node.unique_id.split('.', 2)[-1]}")
        if not outcome.success and not failed:
            failed.append(f"error: dbt stopped before running anything ({outcome.exception or 'compilation'}); "
                          f"see {self.root / 'dbt_console.log'}")
        return (0 if outcome.success else 1), failed

    def run(self, m: Mutation, models: list[str]) -> Outcome:
        original = m.target.relative_to(DBT_PROJECT)
        path = self.project / original
        pristine_text = path.read_text()
        t = time.perf_counter()
        try:
            path.write_text(m.apply(pristine_text))
            unit_select = [f"{name},test_type:unit" for name in models]
            code, failed = self.dbt(["test", "--select", *unit_select])
            if code != 0:
                return self._outcome(m, "unit", failed, t)
            shutil.copyfile(self.pristine, self.warehouse)
            # --full-refresh: an incremental model rebuilt on the baseline's copy would otherwise
            # recompute only the affected persons (none), leaving the mutant's rows unbuilt
            code, failed = self.dbt(["build", "--full-refresh", "--select", *[f"{name}+" for name in models],
                                     "--exclude", "test_type:unit", "resource_type:exposure"])
            if code != 0:
                return self._outcome(m, "build", failed, t)
            status = "equivalent" if m.equivalent else "survived"
            detail = m.equivalent or "no unit test or data test failed"
            return Outcome(m, status, "-", detail, time.perf_counter() - t)
        finally:
            path.write_text(pristine_text)
            shutil.copyfile(self.pristine, self.warehouse)

    def _outcome(self, m: Mutation, stage: str, failed: list[str], t: float) -> Outcome:
        errors = [f for f in failed if f.startswith("error:")]
        if errors or not failed:
            return Outcome(m, "invalid", stage, "; ".join(errors or ["dbt failed without a failing test"]),
                           time.perf_counter() - t)
        names = [f.split(": ", 1)[1] + (" (a run-time error on its data)" if f.startswith("data error") else "")
                 for f in failed]
        shown = ", ".join(names[:3]) + (f" (+{len(names) - 3} more)" if len(names) > 3 else "")
        return Outcome(m, "killed", stage, shown, time.perf_counter() - t)


def outcome_record(o: Outcome) -> dict:
    m = o.mutation
    return {"id": m.id, "file": m.rel_target(DBT_PROJECT), "rule": m.rule, "kind": m.kind, "status": o.status,
            "stage": o.stage, "detail": o.detail, "seconds": round(o.seconds, 1)}


def report_markdown(results: dict) -> str:
    """The kill table of a results record (see `main`): runs, then one row per mutant."""
    rows = results["mutants"]
    count = {s: sum(r["status"] == s for r in rows) for s in ("killed", "survived", "equivalent", "invalid")}
    by_unit = sum(r["status"] == "killed" and r["stage"] == "unit" for r in rows)
    judged = len(rows) - count["equivalent"]
    rate = 100.0 * count["killed"] / judged if judged else 0.0
    lines = ["# Mutation report", "",
             "Made by `scripts/mutate.py` (docs/TESTING.md) on the bundled sample. Stage `unit`: the mutated "
             "models' unit tests failed; `build`: they passed, and a data test failed when the models and "
             "their children were rebuilt on the sample warehouse.", ""]
    for run in results["runs"]:
        lines.append(f"- `{run['command']}` ({run['started']}): {run['mutants']} mutant(s) in "
                     f"{run['seconds'] / 60:.1f} min ({run['baseline_seconds']:.0f} s of it landing and building "
                     f"the baseline), dbt threads {run['threads']}")
    lines += ["",
              f"**{len(rows)} mutants: {count['killed']} killed** ({by_unit} by unit tests, {count['killed'] - by_unit} "
              f"by data tests), {count['survived']} survived, {count['equivalent']} equivalent (named below with the "
              f"reason), {count['invalid']} invalid. Kill rate {rate:.1f} % of the {judged} non-equivalent mutants.",
              "",
              "| mutant | file | rule (MEASURES.md section) | kind | result | stage | caught by / reason | s |",
              "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| `{r['id']}` | {r['file']} | {r['rule']} | {r['kind']} | **{r['status']}** | {r['stage']} | "
                     f"{r['detail'].replace('|', '/')} | {r['seconds']:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="validate every anchor and selection; no dbt")
    ap.add_argument("--list", action="store_true", help="list the mutations and the models each exercises")
    ap.add_argument("--only", help="comma-separated mutation ids to run (default: all)")
    ap.add_argument("--report", type=Path, help="write the kill table (markdown) here, and its results as "
                                                "<report>.json")
    ap.add_argument("--update", action="store_true",
                    help="with --report: run only the mutants --only names (default: those the report has as "
                         "survived or invalid, e.g. after adding the tests that kill them) and replace their rows")
    ap.add_argument("--workspace", type=Path,
                    help="folder for the project copy and the sample warehouse, kept and reused between runs "
                         "(default: a temporary folder, removed afterwards)")
    ap.add_argument("--threads", type=int, default=1, help="dbt threads (default 1: the machine is shared)")
    ap.add_argument("--memory-limit", default="1GB", help="DuckDB memory limit per dbt run (default 1GB)")
    args = ap.parse_args(argv)

    if args.check:
        return check()
    mutations, problems = load_catalogue()
    if problems or check(out=io.StringIO()) != 0:
        check()
        print("mutate: fix the catalogue first (scripts/mutate.py --check)", file=sys.stderr)
        return 2
    models = model_files(DBT_PROJECT)
    previous = None
    if args.update:
        if not args.report or not args.report.with_suffix(".json").exists():
            print("mutate: --update needs --report naming an earlier report (with its .json beside it)", file=sys.stderr)
            return 2
        previous = json.loads(args.report.with_suffix(".json").read_text())
        if not args.only:
            args.only = ",".join(r["id"] for r in previous["mutants"] if r["status"] in ("survived", "invalid"))
            if not args.only:
                print("mutate: the report has no survivor to re-run")
                return 0
    if args.only:
        wanted = [x.strip() for x in args.only.split(",") if x.strip()]
        unknown = sorted(set(wanted) - {m.id for m in mutations})
        if unknown:
            print(f"mutate: no mutation with id {', '.join(unknown)} (see --list)", file=sys.stderr)
            return 2
        mutations = [m for m in mutations if m.id in wanted]
    if args.list:
        for m in mutations:
            print(f"{m.id:40s} {m.kind:11s} {m.rel_target(DBT_PROJECT):55s} -> "
                  f"{', '.join(exercised_models(m, DBT_PROJECT, models))}")
        return 0

    def log(msg: str) -> None:
        print(msg, flush=True)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    started_at = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    baseline_seconds = 0.0
    temporary = args.workspace is None
    root = Path(tempfile.mkdtemp(prefix="opte-mutate-")) if temporary else args.workspace.resolve()
    ws = Workspace(root, args.threads, args.memory_limit, log)
    command = "scripts/mutate.py " + " ".join(argv if argv is not None else sys.argv[1:])
    outcomes: list[Outcome] = []
    started = time.perf_counter()
    try:
        ws.prepare()
        baseline_seconds = time.perf_counter() - started
        log(f"mutate: {len(mutations)} mutant(s), one at a time, dbt threads {args.threads}; workspace {root}")
        for i, m in enumerate(mutations, 1):
            selected = exercised_models(m, DBT_PROJECT, models)
            o = ws.run(m, selected)
            outcomes.append(o)
            log(f"[{i}/{len(mutations)}] {m.id}: {o.status.upper()} ({o.stage}) in {o.seconds:.1f} s: {o.detail}")
    except (KeyboardInterrupt, Interrupted) as exc:
        log(f"mutate: interrupted ({exc or 'SIGINT'}) after {len(outcomes)} mutant(s); the repository was never "
            "edited; partial results follow")
    finally:
        if temporary:
            shutil.rmtree(root, ignore_errors=True)
    total = time.perf_counter() - started
    if not outcomes:
        return 1
    run = {"command": command, "started": started_at, "mutants": len(outcomes), "seconds": round(total, 1),
           "baseline_seconds": round(baseline_seconds, 1), "threads": args.threads}
    records = [outcome_record(o) for o in outcomes]
    if previous is not None:
        fresh = {r["id"]: r for r in records}
        results = {"runs": previous["runs"] + [run],
                   "mutants": [fresh.pop(r["id"], r) for r in previous["mutants"]] + list(fresh.values())}
    else:
        results = {"runs": [run], "mutants": records}
    text = report_markdown(results)
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(text)
        args.report.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
        log(f"mutate: kill table written to {args.report} (results: {args.report.with_suffix('.json')})")
    log(text)
    bad = [r for r in results["mutants"] if r["status"] in ("survived", "invalid")]
    return 0 if not bad and len(outcomes) == len(mutations) else 1


if __name__ == "__main__":
    sys.exit(main())
