"""A local Airflow deployment for the monthly DAG: PostgreSQL, LocalExecutor, scheduler, DAG
processor, triggerer and API server. Run through `bash scripts/airflow_local.sh COMMAND`.

    start    install PostgreSQL when it is missing (as root, Debian's package), create the
             deployment's own PostgreSQL cluster in the state folder, migrate Airflow's database,
             create the `opte_warehouse` pool, start and supervise the four Airflow components
    stop     stop everything by the processes' own ids (pid files), then check no process is left
    status   each component with its pid, the database, the API server's health; exit 0 only when
             everything is up
    env      the configuration as environment variables (no secrets)
    airflow  run the `airflow` command line against the deployment, e.g. `... airflow dags list`

The configuration is a set of environment variables (printed by `env`): Airflow's own
`AIRFLOW__SECTION__KEY` variables, with this deployment's defaults where unset, and a few of the
project's (`OPTE_*`). A deployment with its own PostgreSQL sets AIRFLOW__DATABASE__SQL_ALCHEMY_CONN
(or its _CMD / _SECRET variant): this script then leaves PostgreSQL alone and uses that database.

Layout of the state folder (OPTE_AIRFLOW_DIR, default <repo>/.airflow_local):
    airflow_home/   AIRFLOW_HOME (airflow.cfg, written by Airflow with its generated keys)
    postgresql/     the cluster (data/) and its socket folder (run/)
    logs/           one log per component (scheduler.log, dag-processor.log, triggerer.log,
                    api-server.log, supervisor.log, postgresql.log); task logs under logs/tasks/
    run/            pid files: supervisor.pid and one per component
    secrets/        (mode 0700) the generated database password and the API users' passwords,
                    when the environment does not provide them
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
COMPONENTS = ("scheduler", "dag-processor", "triggerer", "api-server")
POOL = ("opte_warehouse", "1", "DuckDB warehouse: one process at a time")
DB_NAME = DB_USER = "opte_airflow"
STATE_VAR = "OPTE_AIRFLOW_DIR"
# set (to the state folder) only in the environment of the processes the deployment starts, so
# that `stop` can find what they left behind; never inherited from the user's shell
MARKER = "OPTE_AIRFLOW_DEPLOYMENT"
STOP_SECONDS = float(os.environ.get("OPTE_AIRFLOW_STOP_SECONDS") or 60)


def say(msg: str) -> None:
    print(f"airflow_local: {msg}", flush=True)


def fail(msg: str, code: int = 1) -> None:
    print(f"airflow_local: error: {msg}", file=sys.stderr, flush=True)
    raise SystemExit(code)


# ----------------------------------------------------------------------------- configuration

def state_dir() -> Path:
    return Path(os.environ.get(STATE_VAR) or REPO / ".airflow_local").expanduser().resolve()


def external_database() -> bool:
    """True when the environment names Airflow's database itself (a deployment's own PostgreSQL)."""
    return any(os.environ.get(f"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN{s}") for s in ("", "_CMD", "_SECRET"))


def pg_port() -> int:
    return int(os.environ.get("OPTE_AIRFLOW_PG_PORT") or 55432)


def settings() -> dict[str, str]:
    """The deployment's configuration (no secrets): the environment's value where set, else the default."""
    state = state_dir()
    api_port = os.environ.get("AIRFLOW__API__PORT") or "8080"
    defaults = {
        STATE_VAR: str(state),
        "AIRFLOW_HOME": str(state / "airflow_home"),
        "OPTE_HOME": str(REPO / ".opte_home"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        # task processes at a time: the dbt build is the work; the watchers are light, but each
        # waits for the scheduler, so more of them at once shorten the run (4: ~40 s after the
        # build on the sample, 8: ~17 s)
        "AIRFLOW__CORE__PARALLELISM": "8",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(state / "secrets" / "api_passwords.json"),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": api_port,
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(state / "logs" / "tasks"),
        "AIRFLOW__LOGGING__DAG_PROCESSOR_CHILD_PROCESS_LOG_DIRECTORY": str(state / "logs" / "dag_processor"),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": "8793",
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": "8794",
        # the dbt model tasks wait for the one `dbt build` in the triggerer, holding no worker slot
        "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": "True",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "60",
        "AIRFLOW__USAGE_DATA_COLLECTION__ENABLED": "False",
        "SCARF_NO_ANALYTICS": "true",
        "DO_NOT_TRACK": "true",
    }
    if not external_database():
        defaults["OPTE_AIRFLOW_PG_PORT"] = str(pg_port())
    values = {k: os.environ.get(k) or v for k, v in defaults.items()}
    # Cosmos's cache per pipeline home (the DAG file would set it, but the components import cosmos first)
    values["AIRFLOW__COSMOS__CACHE_DIR"] = os.environ.get("AIRFLOW__COSMOS__CACHE_DIR") or \
        str(Path(values["OPTE_HOME"]) / "dbt" / "cosmos_cache")
    return values


def process_env() -> dict[str, str]:
    """The environment of the Airflow processes: this one, the settings, and the database URL."""
    env = {**os.environ, **settings(), MARKER: str(state_dir())}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "scripts" / "airflow_settings"),
                                                      env.get("PYTHONPATH")]))
    if not external_database():
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = (
            f"postgresql+psycopg2://{DB_USER}:{db_password()}@127.0.0.1:{pg_port()}/{DB_NAME}")
    return env


def secrets_dir() -> Path:
    path = state_dir() / "secrets"
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def db_password() -> str:
    """OPTE_AIRFLOW_DB_PASSWORD, else a password generated once for this deployment (secrets/, mode 0600)."""
    if value := os.environ.get("OPTE_AIRFLOW_DB_PASSWORD"):
        return value
    path = secrets_dir() / "db_password"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(24))
    return path.read_text().strip()


# ----------------------------------------------------------------------------- PostgreSQL

def pg_bindir() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3])
                   if p.parts[-3].isdigit() else 0)
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def install_postgresql() -> Path:
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        fail("PostgreSQL is not installed and this is not a Debian machine as root: install it with "
             "`sudo apt-get install postgresql`, or point AIRFLOW__DATABASE__SQL_ALCHEMY_CONN at your own "
             "PostgreSQL", 2)
    say("installing PostgreSQL (Debian package postgresql), without the default cluster")
    started = time.monotonic()
    # The deployment makes its own cluster: the package should not create and start `main` on 5432.
    dropin = Path("/etc/postgresql-common/createcluster.d/opte-no-main-cluster.conf")
    dropin.parent.mkdir(parents=True, exist_ok=True)
    dropin.write_text("create_main_cluster = false\n")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "postgresql"]):
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                fail(f"{' '.join(cmd)} failed: {(proc.stdout + proc.stderr).strip()[-800:]}")
    finally:
        dropin.unlink(missing_ok=True)
    bindir = pg_bindir()
    if bindir is None:
        fail("apt-get installed postgresql but no initdb was found under /usr/lib/postgresql")
    say(f"PostgreSQL installed in {time.monotonic() - started:.0f} s ({bindir})")
    return bindir


def pg_user() -> str | None:
    """The OS user PostgreSQL runs as: `postgres` when we are root (it refuses to run as root)."""
    return "postgres" if os.geteuid() == 0 else None


def as_pg(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    user = pg_user()
    full = ["runuser", "-u", user, "--", *cmd] if user else cmd
    return subprocess.run(full, capture_output=True, text=True, cwd="/", **kwargs)


def pg_paths() -> tuple[Path, Path, Path]:
    base = state_dir() / "postgresql"
    return base / "data", base / "run", state_dir() / "logs" / "postgresql.log"


def check_reachable(path: Path, user: str) -> None:
    """PostgreSQL (as `user`) must be able to reach the state folder: every parent searchable."""
    for parent in reversed([path, *path.parents]):  # from / down: the first one it cannot enter
        if as_pg(["test", "-x", str(parent)]).returncode != 0:
            fail(f"PostgreSQL runs as user {user}, who cannot enter {parent}: put the state folder "
                 f"(OPTE_AIRFLOW_DIR, now {state_dir()}) where {user} can reach it, or `chmod o+x {parent}`", 2)


def ensure_postgresql() -> None:
    bindir = pg_bindir() or install_postgresql()
    data, run, logfile = pg_paths()
    user = pg_user()
    for folder in (data.parent, run, logfile.parent):
        folder.mkdir(parents=True, exist_ok=True)
    if user:
        state_dir().chmod(0o711)  # search only: PostgreSQL reaches its own folders, reads nothing else
        logfile.parent.chmod(0o711)
        logfile.touch()
        for path in (data.parent, data.parent / "data", run, logfile):
            if path.exists():
                shutil.chown(path, user, user)
        data.parent.chmod(0o700)
        check_reachable(data.parent, user)
    if not (data / "PG_VERSION").exists():
        say(f"creating the PostgreSQL cluster in {data}")
        proc = as_pg([str(bindir / "initdb"), "-D", str(data), "--auth-local=peer",
                      "--auth-host=scram-sha-256", "--encoding=UTF8", "--locale=C.UTF-8"])
        if proc.returncode != 0:
            fail(f"initdb failed: {(proc.stdout + proc.stderr).strip()[-800:]}")
    if as_pg([str(bindir / "pg_ctl"), "-D", str(data), "status"]).returncode != 0:
        options = f"-c listen_addresses=127.0.0.1 -c port={pg_port()} -c unix_socket_directories={run}"
        proc = as_pg([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(logfile), "-o", options,
                      "-w", "-t", "60", "start"])
        if proc.returncode != 0:
            fail(f"PostgreSQL did not start (see {logfile}): {(proc.stdout + proc.stderr).strip()[-500:]}")
        say(f"PostgreSQL up on 127.0.0.1:{pg_port()} (data {data}, log {logfile})")
    # the role (its password follows the environment or the generated secret) and the database
    password = db_password().replace("'", "''")
    sql = (f"do $$ begin if not exists (select from pg_roles where rolname = '{DB_USER}') then "
           f"create role {DB_USER} login; end if; end $$;\n"
           f"alter role {DB_USER} with login password '{password}';\n"
           f"select 'create database {DB_NAME} owner {DB_USER}' "
           f"where not exists (select from pg_database where datname = '{DB_NAME}')\\gexec\n")
    proc = as_pg([str(bindir / "psql"), "-h", str(run), "-p", str(pg_port()), "-d", "postgres", "-X", "-q",
                  "-v", "ON_ERROR_STOP=1", "-f", "-"], input=sql)
    if proc.returncode != 0:
        fail(f"could not create the database {DB_NAME}: {(proc.stdout + proc.stderr).strip()[-500:]}")


def stop_postgresql() -> None:
    bindir = pg_bindir()
    data, _, _ = pg_paths()
    if bindir is None or not (data / "postmaster.pid").exists():
        return
    proc = as_pg([str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "-t", "60", "stop"])
    if proc.returncode == 0:
        say("PostgreSQL stopped")
    else:
        say(f"PostgreSQL did not stop cleanly: {(proc.stdout + proc.stderr).strip()[-300:]}")


def postgresql_running() -> bool:
    bindir = pg_bindir()
    data, _, _ = pg_paths()
    return bool(bindir) and (data / "PG_VERSION").exists() and \
        as_pg([str(bindir / "pg_ctl"), "-D", str(data), "status"]).returncode == 0


# ----------------------------------------------------------------------------- processes

def run_dir() -> Path:
    return state_dir() / "run"


def read_pid(name: str) -> int | None:
    try:
        return int((run_dir() / f"{name}.pid").read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped) is not alive
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][0] != "Z"
    except OSError:
        return False


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def component_cmd(name: str, env: dict[str, str]) -> list[str]:
    airflow = str(BIN / "airflow")
    if name == "api-server":
        return [airflow, "api-server", "--host", env["AIRFLOW__API__HOST"], "--port", env["AIRFLOW__API__PORT"],
                "--workers", "1"]
    return [airflow, name]


def supervise() -> None:
    """Start the four components, each in its own process group; restart one that exits; on
    SIGTERM stop them all (SIGTERM, then SIGKILL to the group after OPTE_AIRFLOW_STOP_SECONDS)."""
    env = process_env()
    logs = state_dir() / "logs"
    procs: dict[str, subprocess.Popen] = {}
    restarts: dict[str, list[float]] = {name: [] for name in COMPONENTS}
    stopping = False

    def log(msg: str) -> None:
        print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} supervisor: {msg}", flush=True)

    def launch(name: str) -> None:
        out = open(logs / f"{name}.log", "a")
        procs[name] = subprocess.Popen(component_cmd(name, env), env=env, stdout=out, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, cwd=REPO, start_new_session=True)
        out.close()
        (run_dir() / f"{name}.pid").write_text(f"{procs[name].pid}\n")
        log(f"started {name} (pid {procs[name].pid}), log {logs / f'{name}.log'}")

    def on_term(signum, frame):  # noqa: ARG001
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    for name in COMPONENTS:
        launch(name)
    next_start: dict[str, float] = {}
    while not stopping:
        time.sleep(1)
        for name in COMPONENTS:
            proc = procs[name]
            if name in next_start:
                if time.monotonic() >= next_start[name] and not stopping:
                    del next_start[name]
                    launch(name)
            elif proc.poll() is not None:
                now = time.monotonic()
                recent = [t for t in restarts[name] if now - t < 600] + [now]
                restarts[name] = recent
                delay = min(60, 2 ** (len(recent) - 1))
                log(f"{name} (pid {proc.pid}) exited with code {proc.returncode}; restarting in {delay} s "
                    f"(restart {len(recent)} in 10 minutes; see {logs / f'{name}.log'})")
                if group_alive(proc.pid):  # what it left behind goes before the new one starts
                    os.killpg(proc.pid, signal.SIGKILL)
                next_start[name] = now + delay
    log("stopping")
    # the API server last: tasks that are finishing report through it
    for group in (("scheduler", "dag-processor", "triggerer"), ("api-server",)):
        running = [n for n in group if n not in next_start and group_alive(procs[n].pid)]
        for name in running:
            os.killpg(procs[name].pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        while any(group_alive(procs[n].pid) for n in running) and time.monotonic() < deadline:
            for n in running:
                procs[n].poll()
            time.sleep(0.2)
        for name in running:
            if group_alive(procs[name].pid):
                log(f"{name} still running after {STOP_SECONDS:.0f} s: SIGKILL to its process group {procs[name].pid}")
                os.killpg(procs[name].pid, signal.SIGKILL)
            procs[name].wait()
            log(f"{name} stopped (exit code {procs[name].returncode})")
    for name in COMPONENTS:
        (run_dir() / f"{name}.pid").unlink(missing_ok=True)
    log("stopped")


def leftovers() -> list:
    """Processes the deployment started that still run: those carrying its marker in their
    environment, and PostgreSQL's (its data folder on their command line)."""
    import psutil

    state, found = str(state_dir()), []
    data = str(pg_paths()[0])
    mine = {os.getpid(), *(p.pid for p in psutil.Process().parents())}
    for proc in psutil.process_iter(["pid", "status"]):
        if proc.pid in mine or proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        try:
            if proc.environ().get(MARKER) == state or data in " ".join(proc.cmdline()):
                found.append(proc)
        except (psutil.Error, OSError):
            continue
    return found


# ----------------------------------------------------------------------------- commands

def airflow(args: list[str], env: dict[str, str], timeout: int = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(BIN / "airflow"), *args], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)
    if proc.returncode != 0:
        fail(f"airflow {' '.join(args)} failed: {(proc.stdout + proc.stderr).strip()[-1500:]}")
    return proc


def api_health(port: str) -> dict | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=5) as resp:
            return json.load(resp)
    except (urllib.error.URLError, OSError, ValueError):
        return None


def healthy(health: dict | None) -> bool:
    if not health:
        return False
    return all((health.get(part) or {}).get("status") == "healthy"
               for part in ("metadatabase", "scheduler", "triggerer", "dag_processor"))


def cmd_start() -> None:
    started = time.monotonic()
    state = state_dir()
    for sub in ("logs", "run", "airflow_home", "logs/tasks"):
        (state / sub).mkdir(parents=True, exist_ok=True)
    if alive(read_pid("supervisor")):
        say(f"already running (supervisor pid {read_pid('supervisor')})")
        cmd_status()
        return
    for name in COMPONENTS:  # left by a supervisor that was killed: they would hold the ports
        cpid = read_pid(name)
        if cpid and group_alive(cpid):
            say(f"{name} (pid {cpid}) still runs without its supervisor: stopping it first")
            os.killpg(cpid, signal.SIGTERM)
            deadline = time.monotonic() + STOP_SECONDS
            while group_alive(cpid) and time.monotonic() < deadline:
                time.sleep(0.2)
            if group_alive(cpid):
                os.killpg(cpid, signal.SIGKILL)
    if external_database():
        say("Airflow's database from the environment (AIRFLOW__DATABASE__SQL_ALCHEMY_CONN*): PostgreSQL not managed here")
    else:
        ensure_postgresql()
    env = process_env()
    say("migrating Airflow's database")
    airflow(["db", "migrate"], env, timeout=900)
    airflow(["pools", "set", *POOL], env)
    if not os.environ.get("OPTE_PSEUDO_KEY"):
        say("OPTE_PSEUDO_KEY is not set: landing takes the pseudonymisation key from the Airflow connection "
            "`opte_pseudo_key` (password), else the development key (with a warning); set one in production")
    out = open(state / "logs" / "supervisor.log", "a")
    sup = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "_supervise"], env=env, stdout=out,
                           stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO, start_new_session=True)
    out.close()
    (run_dir() / "supervisor.pid").write_text(f"{sup.pid}\n")
    port, deadline = env["AIRFLOW__API__PORT"], time.monotonic() + float(os.environ.get("OPTE_AIRFLOW_START_SECONDS") or 180)
    health = None
    while time.monotonic() < deadline:
        if sup.poll() is not None:
            fail(f"the supervisor exited ({sup.returncode}); see {state / 'logs' / 'supervisor.log'}")
        health = api_health(port)
        if healthy(health):
            break
        time.sleep(1)
    else:
        fail(f"not healthy after {time.monotonic() - started:.0f} s: {health}; logs in {state / 'logs'}")
    say(f"up in {time.monotonic() - started:.0f} s")
    cmd_status()


def cmd_stop() -> int:
    started = time.monotonic()
    if not state_dir().is_dir():
        say(f"nothing to stop: no deployment in {state_dir()}")
        return 0
    pid = read_pid("supervisor")
    if alive(pid):
        say(f"stopping the supervisor (pid {pid}) and the Airflow components")
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS * len(COMPONENTS) + 30
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.5)
        if alive(pid):
            say(f"supervisor {pid} did not stop: SIGKILL")
            os.killpg(pid, signal.SIGKILL)
    for name in COMPONENTS:  # a supervisor killed before it stopped its components
        cpid = read_pid(name)
        if cpid and group_alive(cpid):
            say(f"{name} (pid {cpid}) still running: SIGKILL to its process group")
            os.killpg(cpid, signal.SIGKILL)
        (run_dir() / f"{name}.pid").unlink(missing_ok=True)
    (run_dir() / "supervisor.pid").unlink(missing_ok=True)
    if not external_database():
        stop_postgresql()
    left = leftovers()
    for proc in left:
        say(f"left behind: pid {proc.pid} {' '.join(proc.cmdline())[:200]}: SIGKILL")
        proc.kill()
    say(f"stopped in {time.monotonic() - started:.0f} s" + (f" ({len(left)} stray process(es) killed)" if left else ""))
    return 1 if left else 0


def cmd_status() -> int:
    env = {**os.environ, **settings()}
    state = state_dir()
    up = 0
    sup = read_pid("supervisor")
    print(f"state folder  {state}")
    print(f"supervisor    {'running, pid ' + str(sup) if alive(sup) else 'stopped'}")
    for name in COMPONENTS:
        pid = read_pid(name)
        running = alive(pid)
        up += running
        print(f"{name:<13} {'running, pid ' + str(pid) if running else 'stopped'}   log {state / 'logs' / f'{name}.log'}")
    if external_database():
        print("database      from AIRFLOW__DATABASE__SQL_ALCHEMY_CONN* (not managed here)")
    else:
        print(f"postgresql    {'running' if postgresql_running() else 'stopped'} on 127.0.0.1:{pg_port()}, "
              f"data {pg_paths()[0]}, log {pg_paths()[2]}")
    port = env["AIRFLOW__API__PORT"]
    health = api_health(port)
    print(f"health        {json.dumps({k: (v or {}).get('status') for k, v in health.items()}) if health else 'no answer'}")
    print(f"UI / REST API http://127.0.0.1:{port}  (user admin, password in "
          f"{env['AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE']})")
    print(f"task logs     {env['AIRFLOW__LOGGING__BASE_LOG_FOLDER']}")
    print(f"pipeline home {env['OPTE_HOME']}")
    return 0 if up == len(COMPONENTS) and alive(sup) and healthy(health) else (3 if up == 0 else 1)


def cmd_env() -> None:
    for key, value in settings().items():
        print(f"export {key}={value}")
    if not external_database():
        print(f"# Airflow's database (the password is OPTE_AIRFLOW_DB_PASSWORD, else generated in {state_dir() / 'secrets'}):")
        print(f"# export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=postgresql+psycopg2://{DB_USER}:PASSWORD@127.0.0.1:{pg_port()}/{DB_NAME}")


def main() -> None:
    args = sys.argv[1:]
    command = args[0] if args else "status"
    if command == "start":
        cmd_start()
    elif command == "stop":
        raise SystemExit(cmd_stop())
    elif command == "status":
        raise SystemExit(cmd_status())
    elif command == "env":
        cmd_env()
    elif command == "airflow":
        os.execve(str(BIN / "airflow"), [str(BIN / "airflow"), *args[1:]], process_env())
    elif command == "_supervise":
        supervise()
    else:
        fail(f"unknown command {command!r}: use start, stop, status, env or airflow", 2)


if __name__ == "__main__":
    main()
