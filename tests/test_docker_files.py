"""docker/: the Dockerfile and the compose file agree with the code, the lock and the tools.

No Docker engine runs here and nothing is built: the files are parsed and checked against what
they name, so a typo in a program, an Airflow subcommand or flag, a config key, an environment
variable, a port or a dependency fails here instead of in a deployment. Airflow's and MLflow's
command lines and config are read from their sources (ast / YAML), not imported: importing
either costs seconds.
"""

from __future__ import annotations

import ast
import importlib.metadata as metadata
import re
import shlex
import tomllib
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
LOCALHOST = "127.0.0.1"

# Variables read by a tool rather than by our code or scripts, with the reader.
TOOL_VARIABLES = {
    "PGPASSWORD": "libpq (psycopg), for URLs without a password",
    "POSTGRES_PASSWORD": "the postgres image",
    "REDISCLI_AUTH": "redis-cli (the health check)",
    "AIRFLOW_HOME": "Airflow",
    "PATH": "the shell",
    "PYTHONPATH": "Python (the workers' airflow_local_settings: fresh_solver/preload.py)",
    "PYTHONUNBUFFERED": "Python",
}
TOOL_PREFIXES = {"UV_": "uv, in the Dockerfile's build stage"}
# Scripts of docker/ that read environment variables of their own.
SCRIPTS = ("entrypoint.sh", "postgres-init.sh")
SECRET_WORDS = ("PASSWORD", "SECRET", "FERNET_KEY", "EVIDENCE_KEY", "TOKEN")


def is_secret(name: str) -> bool:
    """Whether ``name`` holds a credential (not the path of a file that holds one)."""
    return any(w in name for w in SECRET_WORDS) and not name.endswith(("_FILE", "_PATH"))


# ---- the files ---------------------------------------------------------------------------------


@cache
def compose() -> dict:
    """docker/compose.yaml with its anchors and merge keys resolved (as compose does)."""
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def services() -> dict[str, dict]:
    """Service name -> its definition."""
    return compose()["services"]


def own_image(service: dict) -> bool:
    """Whether the service runs the project image (built from docker/Dockerfile)."""
    return "build" in service


@cache
def env_example() -> dict[str, str]:
    """NAME -> placeholder of docker/.env.example (compose's env-file syntax, quotes dropped)."""
    values = {}
    for number, line in enumerate((DOCKER / ".env.example").read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        assert "=" in line, f".env.example line {number}: not NAME=value: {line!r}"
        name, value = line.split("=", 1)
        values[name.strip()] = value.strip().strip('"')
    return values


@cache
def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    instructions, pending = [], ""
    for line in (DOCKER / "Dockerfile").read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        full = pending + line
        pending = ""
        keyword, _, rest = full.strip().partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
    return instructions


def interpolated(text: str) -> set[str]:
    """Names compose interpolates in ``text`` (``$$`` is a literal dollar, not a variable)."""
    text = text.replace("$$", "")
    return set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-?+][^}]*)?\}", text))


def masked(text: str) -> str:
    """``text`` with every interpolation replaced by ``VAR`` (they may hold spaces)."""
    return re.sub(r"\$\{[^}]*\}", "VAR", text.replace("$$", ""))


def strings(node) -> list[str]:
    """Every string in a parsed YAML tree, keys included."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in strings(k) + strings(v)]
    if isinstance(node, list):
        return [s for item in node for s in strings(item)]
    return []


def environment(service: dict) -> dict[str, str]:
    """The service's environment as NAME -> value (the list form is refused: merge keys and
    the checks below need the mapping)."""
    env = service.get("environment") or {}
    assert isinstance(env, dict), "environment: use the mapping form (NAME: value)"
    return {k: "" if v is None else str(v) for k, v in env.items()}


def healthcheck_argv(service: dict) -> list[str] | None:
    """The health check as argv (a CMD-SHELL line split as the shell would), None if none."""
    test = (service.get("healthcheck") or {}).get("test")
    if not test or test == ["NONE"] or (service.get("healthcheck") or {}).get("disable"):
        return None
    if isinstance(test, str):
        return shlex.split(test)
    if test[0] == "CMD":
        return [str(a) for a in test[1:]]
    assert test[0] == "CMD-SHELL", f"healthcheck test must start with CMD or CMD-SHELL: {test}"
    return shlex.split(test[1].replace("$$", "$"))


def argv_of(name: str, service: dict) -> list[str]:
    """The service's command; exec form only, so that it can be checked word by word."""
    command = service.get("command")
    assert isinstance(command, list), (
        f"service {name}: command must be a list (exec form), got {command!r}")
    return [str(a) for a in command]


def flag_values(argv: list[str]) -> dict[str, str]:
    """--flag -> the word after it."""
    return {a: argv[i + 1] for i, a in enumerate(argv[:-1]) if a.startswith("--")}


# ---- what the image and the tools provide -----------------------------------------------------


@cache
def locked_console_scripts() -> set[str]:
    """Console scripts of fresh-solver and its runtime dependencies (extras followed, dev group
    not: the image is synced with --no-dev)."""
    seen: set[str] = set()
    todo = [("fresh-solver", frozenset())]
    scripts: set[str] = set()
    while todo:
        name, extras = todo.pop()
        key = (re.sub(r"[-_.]+", "-", name).lower(), extras)
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # a marker-excluded dependency of another platform
        scripts |= {ep.name for ep in dist.entry_points if ep.group == "console_scripts"}
        for spec in dist.requires or []:
            req = Requirement(spec)
            envs = [{"extra": e} for e in extras] or [{"extra": ""}]
            if req.marker is None or any(req.marker.evaluate(env) for env in envs):
                todo.append((req.name, frozenset(req.extras)))
    return scripts


def site_packages() -> Path:
    """The venv's site-packages (the lock's packages: what the image installs)."""
    return Path(metadata.distribution("apache-airflow").locate_file(""))


def _arg_flags(tree: ast.Module, known: dict[str, tuple]) -> dict[str, tuple]:
    """ARG_* name -> its flags, for the module's ``ARG_X = Arg(("-x", "--xx"), ...)``."""
    flags = dict(known)
    for node in tree.body:
        if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
                and getattr(node.value.func, "id", None) == "Arg"):
            keywords = {k.arg: k.value for k in node.value.keywords}
            first = node.value.args[0] if node.value.args else keywords.get("flags")
            if isinstance(first, ast.Tuple):
                flags[node.targets[0].id] = tuple(e.value for e in first.elts)
    return flags


def _command(call: ast.Call, flags: dict[str, tuple], lists: dict[str, list]) -> tuple:
    """(name, flags) of an ActionCommand(...), (name, {sub: flags}) of a GroupCommand(...)."""
    kw = {k.arg: k.value for k in call.keywords}
    name = kw["name"].value
    if call.func.id == "GroupCommand":
        # (the DAG-file parser's groups are comprehensions; core commands name a list)
        subcommands = lists.get(getattr(kw["subcommands"], "id", None), [])
        return name, dict(subcommands)
    args = kw.get("args")
    names = [e.id for e in args.elts if isinstance(e, ast.Name)] if args is not None else []
    return name, {f for n in names for f in flags.get(n, ())} | {"-h", "--help"}


@cache
def airflow_cli() -> dict[str, object]:
    """Airflow's command tree: {command: flags} or {group: {subcommand: flags}}, from
    airflow/cli/cli_config.py and the celery provider's CLI definition."""
    tree: dict[str, object] = {}
    flags: dict[str, tuple] = {}
    for path in ("airflow/cli/cli_config.py", "airflow/providers/celery/cli/definition.py"):
        module = ast.parse((site_packages() / path).read_text())
        flags = _arg_flags(module, flags)
        lists: dict[str, list] = {}
        for node in module.body:
            target, value = None, None
            if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
                target, value = node.targets[0].id, node.value
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                target, value = node.target.id, node.value
            if isinstance(value, ast.Tuple | ast.List):
                calls = [e for e in value.elts if isinstance(e, ast.Call)
                         and getattr(e.func, "id", None) in ("ActionCommand", "GroupCommand")]
                if calls:
                    lists[target] = [_command(c, flags, lists) for c in calls]
        top = lists.get("core_commands", []) + lists.get("CELERY_CLI_COMMANDS", [])
        tree.update(dict(top))
    return tree


@cache
def airflow_options() -> dict[str, set[str]]:
    """Every Airflow config section -> its option names: core's config.yml and the installed
    providers' (their get_provider_info() is a literal dict)."""
    sections: dict[str, set[str]] = {}

    def add(config: dict) -> None:
        for section, body in config.items():
            sections.setdefault(section.lower(), set()).update(
                o.lower() for o in (body.get("options") or {}))

    add(yaml.safe_load((site_packages() / "airflow/config_templates/config.yml").read_text()))
    for info in site_packages().glob("airflow/providers/**/get_provider_info.py"):
        function = next(n for n in ast.parse(info.read_text()).body
                        if isinstance(n, ast.FunctionDef) and n.name == "get_provider_info")
        returned = next(n for n in ast.walk(function) if isinstance(n, ast.Return))
        add(ast.literal_eval(returned.value).get("config", {}))
    return sections


@cache
def mlflow_server_flags() -> set[str]:
    """The options of `mlflow server`, from its click decorators in mlflow/cli/__init__.py."""
    base = site_packages() / "mlflow"
    shared = {}
    for node in ast.parse((base / "utils/cli_args.py").read_text()).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            shared[node.targets[0].id] = node.value
    server = next(n for n in ast.walk(ast.parse((base / "cli/__init__.py").read_text()))
                  if isinstance(n, ast.FunctionDef) and n.name == "server")
    found = set()
    for decorator in server.decorator_list:
        if isinstance(decorator, ast.Attribute) and decorator.value.id == "cli_args":
            decorator = shared[decorator.attr]
        for node in ast.walk(decorator):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and node.value.startswith("--"):
                found |= set(node.value.split("/"))
    return found


@cache
def serve_flags() -> set[str]:
    """The options of `fresh-solver serve`, from the CLI's own parser."""
    from fresh_solver.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")  # noqa: SLF001
    return {s for a in sub.choices["serve"]._actions for s in a.option_strings}  # noqa: SLF001


@cache
def code_variables() -> set[str]:
    """FRESH_SOLVER_* names that fresh_solver/ or dags/ spell as a string literal in code
    (``os.environ.get("FRESH_SOLVER_X")``, ``CONFIG_ENV = "FRESH_SOLVER_CONFIG"``): a name
    only in a docstring or a comment does not count."""
    names = set()
    for path in [*(ROOT / "fresh_solver").rglob("*.py"), *(ROOT / "dags").glob("*.py")]:
        tree = ast.parse(path.read_text())
        docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                      if isinstance(n, ast.Module | ast.ClassDef | ast.FunctionDef)
                      and n.body and isinstance(n.body[0], ast.Expr)}
        names |= {n.value for n in ast.walk(tree)
                  if isinstance(n, ast.Constant) and isinstance(n.value, str)
                  and id(n) not in docstrings
                  and re.fullmatch(r"FRESH_SOLVER_[A-Z0-9_]+", n.value)}
    return names


@cache
def mlflow_variables() -> set[str]:
    """The names mlflow.environment_variables defines (every MLFLOW_* variable MLflow reads)."""
    text = (site_packages() / "mlflow/environment_variables.py").read_text()
    return set(re.findall(r'"(MLFLOW_[A-Z0-9_]+)"', text))


@cache
def script_variables() -> set[str]:
    """Variables docker/'s shell scripts expand."""
    names = set()
    for script in SCRIPTS:
        text = (DOCKER / script).read_text()
        names |= set(re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", text))
        names |= set(re.findall(r"environ\[[\"']([A-Za-z_][A-Za-z0-9_]*)[\"']\]", text))
    return names


def known_variable_problem(name: str) -> str | None:
    """Why ``name`` is not a variable anything reads, or None."""
    if name.startswith("AIRFLOW__"):
        parts = name.split("__")
        if len(parts) != 3:
            return f"{name}: not AIRFLOW__SECTION__KEY"
        section, option = parts[1].lower(), parts[2].lower()
        if option not in airflow_options().get(section, set()):
            return f"{name}: Airflow has no option [{section}] {option}"
        return None
    if name.startswith("FRESH_SOLVER_"):
        return None if name in code_variables() else \
            f"{name}: no code in fresh_solver/ or dags/ reads it"
    if name.startswith("MLFLOW_"):
        return None if name in mlflow_variables() else f"{name}: not an MLflow variable"
    return None


# ---- compose: structure -------------------------------------------------------------------------


def test_every_service_has_an_image_or_a_build():
    for name, service in services().items():
        assert "image" in service or "build" in service, f"service {name}: no image or build"


def test_the_project_image_is_built_from_docker_dockerfile():
    ours = [n for n, s in services().items() if own_image(s)]
    assert {"mlflow", "airflow-worker", "fresh-solver-serve"} <= set(ours)
    for name in ours:
        build = services()[name]["build"]
        context = (DOCKER / build["context"]).resolve()
        assert context == ROOT, f"service {name}: build context {context} is not the repo root"
        assert (context / build["dockerfile"]).is_file(), f"service {name}: no {build}"


def test_the_stack_has_every_component():
    expected = {"postgres", "redis", "mlflow", "airflow-init", "airflow-apiserver",
                "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
                "airflow-worker", "fresh-solver-serve"}
    assert expected <= set(services()), f"missing services: {expected - set(services())}"


def one_shot_services() -> set[str]:
    return {target for s in services().values()
            for target, dep in (s.get("depends_on") or {}).items()
            if dep.get("condition") == "service_completed_successfully"}


def test_every_long_running_service_has_a_health_check():
    for name, service in services().items():
        if name in one_shot_services():
            assert service.get("restart") == "no", f"service {name}: a one-shot job restarts"
            continue
        assert healthcheck_argv(service), f"service {name}: no health check"


def test_depends_on_conditions_are_met():
    for name, service in services().items():
        depends = service.get("depends_on") or {}
        assert isinstance(depends, dict), f"service {name}: depends_on needs conditions"
        for target, dep in depends.items():
            assert target in services(), f"service {name}: depends on unknown {target}"
            condition = dep.get("condition")
            assert condition in ("service_healthy", "service_completed_successfully"), (
                f"service {name}: depends on {target} with condition {condition!r}")
            if condition == "service_healthy":
                assert healthcheck_argv(services()[target]), (
                    f"service {name}: waits for {target} to be healthy; it has no health check")


def test_ports_are_published_on_localhost_only():
    for name, service in services().items():
        for port in service.get("ports") or []:
            host = port.get("host_ip") if isinstance(port, dict) else str(port).split(":")[0]
            assert host == LOCALHOST, f"service {name}: port {port} not bound to {LOCALHOST}"


def test_named_volumes_are_declared():
    declared = set(compose().get("volumes") or {})
    for name, service in services().items():
        for volume in service.get("volumes") or []:
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in declared, f"service {name}: volume {source} not declared"
            else:
                assert (DOCKER / source).exists(), f"service {name}: no file {source}"


# ---- compose: commands --------------------------------------------------------------------------


def command_lines() -> list[tuple[str, str, list[str]]]:
    """(service, what, argv) of every command and health check of the project image."""
    lines = []
    for name, service in services().items():
        if not own_image(service):
            continue
        lines.append((name, "command", argv_of(name, service)))
        if (check := healthcheck_argv(service)) is not None:
            lines.append((name, "healthcheck", check))
    return lines


def entrypoint_verbs() -> set[str]:
    text = (DOCKER / "entrypoint.sh").read_text()
    return set(re.findall(r"^\s+([a-z][a-z-]*)\)\s*$", text, re.MULTILINE))


def test_every_program_is_in_the_image():
    programs = locked_console_scripts() | {"python"} | entrypoint_verbs()
    for needed in ("airflow", "mlflow", "fresh-solver", "celery"):
        assert needed in locked_console_scripts(), f"{needed}: not a console script of the lock"
    for name, what, argv in command_lines():
        assert argv[0] in programs, f"service {name} {what}: {argv[0]!r} is not in the image"


def airflow_lines() -> list[tuple[str, list[str]]]:
    lines = [(f"service {name} {what}", argv) for name, what, argv in command_lines()
             if argv[0] == "airflow"]
    for line in (DOCKER / "entrypoint.sh").read_text().splitlines():
        words = line.strip().removeprefix("exec ").split()
        if words[:1] == ["airflow"]:
            lines.append(("entrypoint.sh", [w.strip('"') for w in words]))
    return lines


def test_airflow_commands_and_flags_exist():
    tree = airflow_cli()
    assert airflow_lines(), "no airflow command found"
    for where, argv in airflow_lines():
        entry = tree.get(argv[1])
        assert entry is not None, f"{where}: airflow has no command {argv[1]!r}"
        rest = argv[2:]
        if isinstance(entry, dict):
            assert rest and rest[0] in entry, f"{where}: no `airflow {argv[1]} {rest[:1]}`"
            entry, rest = entry[rest[0]], rest[1:]
        for flag in (a.split("=")[0] for a in rest if a.startswith("-")):
            assert flag in entry, f"{where}: `{' '.join(argv[:3])}` has no flag {flag}"


def test_workers_consume_the_default_and_the_trial_queues():
    from fresh_solver.lifecycle.pool import TRIAL_POOL  # the trial queue has the pool's name

    queues = set()
    for _, argv in airflow_lines():
        if argv[1:3] == ["celery", "worker"]:
            queues |= set(flag_values(argv).get("--queues", "").split(","))
    default_queue = yaml.safe_load(
        (site_packages() / "airflow/config_templates/config.yml").read_text()
    )["operators"]["options"]["default_queue"]["default"]
    assert {default_queue, TRIAL_POOL} <= queues, f"the Celery workers consume only {queues}"
    worker = services()["airflow-worker"]
    for key in ("container_name", "ports"):
        assert not worker.get(key), f"airflow-worker has {key}: it cannot scale"


def test_only_the_workers_import_the_tasks_modules_before_forking():
    """Celery workers fork every task: their PYTHONPATH holds the project's
    airflow_local_settings (fresh_solver/preload.py), where the image installs the package."""
    from fresh_solver.preload import SETTINGS_FOLDER

    python = re.search(r"ARG PYTHON_IMAGE=python:(\d+\.\d+)",
                       (DOCKER / "Dockerfile").read_text()).group(1)
    folder = f"/opt/venv/lib/python{python}/site-packages/fresh_solver/{SETTINGS_FOLDER.name}"
    assert (SETTINGS_FOLDER / "airflow_local_settings.py").is_file()
    preloading = {name for name, service in services().items()
                  if environment(service).get("PYTHONPATH") == folder}
    assert preloading == {"airflow-worker", "airflow-trial-worker"}


def test_the_mlflow_accounts_are_the_ones_the_accounts_tool_creates():
    from fresh_solver.registry import accounts

    users = {environment(s).get("MLFLOW_TRACKING_USERNAME") for s in services().values()}
    assert {accounts.SERVICE_USER, accounts.LOADER_USER} <= users, (
        f"compose.yaml's MLflow users {users} are not the accounts tool's "
        f"{accounts.SERVICE_USER}, {accounts.LOADER_USER}")
    assert environment(services()["airflow-worker"])["MLFLOW_TRACKING_USERNAME"] == \
        accounts.SERVICE_USER, "the tasks must run as the service account"
    assert environment(services()["fresh-solver-serve"])["MLFLOW_TRACKING_USERNAME"] == \
        accounts.LOADER_USER, "fresh-solver serve must run as the read-only loader"
    text = (DOCKER / "entrypoint.sh").read_text()
    assert "python -m fresh_solver.registry.accounts --credentials" in text
    for section in ("service", "loader"):
        assert f'"{section}": {{"password"' in text, f"entrypoint.sh: no {section}.password"
    for name in ("airflow-worker", "airflow-trial-worker", "fresh-solver-serve"):
        condition = services()[name]["depends_on"].get("mlflow-accounts", {}).get("condition")
        assert condition == "service_completed_successfully", (
            f"service {name} may start before its MLflow account exists")


def test_airflow_init_migrates_and_creates_the_trial_pool():
    from fresh_solver.lifecycle.pool import TRIAL_POOL

    assert argv_of("airflow-init", services()["airflow-init"]) == ["airflow-init"]
    text = (DOCKER / "entrypoint.sh").read_text()
    assert "airflow db migrate" in text, "entrypoint.sh airflow-init: no db migrate"
    assert f"airflow pools set {TRIAL_POOL} " in text, f"entrypoint.sh: no pool {TRIAL_POOL}"


def test_mlflow_server_command():
    argv = argv_of("mlflow", services()["mlflow"])
    assert argv[:2] == ["mlflow", "server"], f"service mlflow runs {argv[:2]}"
    for flag in (a for a in argv if a.startswith("--")):
        assert flag in mlflow_server_flags(), f"service mlflow: `mlflow server` has no {flag}"
    assert "--serve-artifacts" in argv, "service mlflow: artifacts must be proxied"
    values = flag_values(argv)
    assert values["--backend-store-uri"].startswith("postgresql"), "mlflow: not on PostgreSQL"
    apps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"][
        "mlflow.app"]
    assert values["--app-name"] in apps, (
        f"service mlflow: --app-name {values['--app-name']} is not an mlflow.app entry point "
        f"of pyproject.toml ({sorted(apps)})")
    env = environment(services()["mlflow"])
    assert env.get("MLFLOW_SERVER_ENABLE_JOB_EXECUTION") == "false", (
        "service mlflow: MLFLOW_SERVER_ENABLE_JOB_EXECUTION must be false (memory, start-up)")
    assert "MLFLOW_AUTH_ADMIN_PASSWORD" in env, "service mlflow: no admin password"


def test_serve_command_and_its_health_check():
    argv = argv_of("fresh-solver-serve", services()["fresh-solver-serve"])
    assert argv[:2] == ["fresh-solver", "serve"], f"fresh-solver-serve runs {argv}"
    for flag in (a for a in argv if a.startswith("--")):
        assert flag in serve_flags(), f"service fresh-solver-serve: serve has no {flag}"
    assert any("/livez" in a for a in healthcheck_argv(services()["fresh-solver-serve"]))


def test_health_checks_and_published_ports_match_the_listening_port():
    scheduler_port = yaml.safe_load(
        (site_packages() / "airflow/config_templates/config.yml").read_text()
    )["scheduler"]["options"]["scheduler_health_check_server_port"]["default"]
    for name, service in services().items():
        if not own_image(service):
            continue
        argv = argv_of(name, service)
        port = flag_values(argv).get("--port")
        if argv[:2] == ["airflow", "scheduler"]:
            port = str(scheduler_port)
        urls = [a for a in healthcheck_argv(service) or [] if a.startswith("http")]
        for url in urls:
            assert str(urlsplit(url).port) == port, (
                f"service {name}: health check {url} but it listens on {port}")
        for mapping in service.get("ports") or []:
            assert str(mapping).rsplit(":", 1)[1] == port, (
                f"service {name}: publishes {mapping} but listens on {port}")


def test_celery_health_check_names_an_existing_app():
    argv = healthcheck_argv(services()["airflow-worker"])
    app = flag_values(argv)["--app"]
    module, attribute = app.rsplit(".", 1)
    path = site_packages() / (module.replace(".", "/") + ".py")
    assert path.is_file(), f"airflow-worker health check: no module {module}"
    assert f'"{attribute}"' in path.read_text() or f"\n{attribute} =" in path.read_text(), (
        f"airflow-worker health check: {module} has no {attribute}")


# ---- variables and secrets -------------------------------------------------------------------


def all_environments() -> list[tuple[str, str, str]]:
    rows = [(name, k, v) for name, s in services().items() for k, v in environment(s).items()]
    for keyword, args in dockerfile():
        if keyword == "ENV":
            for k, v in re.findall(r"(\S+?)=(\S+)", args):
                rows.append(("Dockerfile", k, v))
    return rows


def test_every_variable_is_read_by_something():
    for where, name, _ in all_environments():
        problem = known_variable_problem(name)
        assert problem is None, f"{where}: {problem}"
        if not name.startswith(("AIRFLOW__", "FRESH_SOLVER_", "MLFLOW_")):
            command = " ".join(strings(services().get(where, {}).get("command")))
            assert (name in TOOL_VARIABLES or name.startswith(tuple(TOOL_PREFIXES))
                    or name in script_variables() or name in command), (
                f"{where}: nothing reads {name} (not a tool's variable, not used by "
                f"{', '.join(SCRIPTS)} or the service's command)")


def test_env_example_lists_exactly_the_interpolated_variables():
    used = interpolated((DOCKER / "compose.yaml").read_text())
    listed = set(env_example())
    assert not used - listed, f"used in compose.yaml, missing in .env.example: {used - listed}"
    assert not listed - used, f"in .env.example, unused by compose.yaml: {listed - used}"
    for name in listed:
        problem = known_variable_problem(name)
        assert problem is None, f".env.example: {problem}"


def is_variable_line(line: str) -> bool:
    return bool(line) and not line.startswith("#") and "=" in line


def test_env_example_documents_every_variable_with_a_placeholder():
    lines = (DOCKER / ".env.example").read_text().splitlines()
    for i, line in enumerate(lines):
        if is_variable_line(line):
            name, value = line.split("=", 1)
            above = i - 1
            while above >= 0 and is_variable_line(lines[above]):
                above -= 1  # a group of variables under one comment
            assert above >= 0 and lines[above].startswith("#"), (
                f".env.example: {name} has no comment")
            if is_secret(name):
                assert value.startswith("change-me"), (
                    f".env.example: {name} must be a change-me placeholder, not {value!r}")


def test_no_literal_secret_in_compose():
    text = (DOCKER / "compose.yaml").read_text()
    for name, key, value in all_environments():
        if name != "Dockerfile" and is_secret(key):
            assert re.fullmatch(r"\$\{[^}]+\}", value), (
                f"service {name}: {key} must come from docker/.env (${{...}}), not a literal")
    for s in strings(compose()):
        for password in re.findall(r"://[^/\s:@]*:([^@\s]*)@", masked(s)):
            assert password == "VAR", f"compose.yaml: a URL with a literal password: {s}"
    for name, value in env_example().items():
        if is_secret(name):
            assert value not in text, f"compose.yaml contains the value of {name}"


def test_urls_name_services_and_databases_that_exist():
    init = (DOCKER / "postgres-init.sh").read_text()
    databases = set(re.findall(r"CREATE DATABASE (\w+)", init))
    roles = set(re.findall(r"CREATE ROLE (\w+)", init))
    ini = (DOCKER / "mlflow_auth.ini").read_text()
    for s in [*strings(compose()), ini]:
        for url in re.findall(r"[a-z+]+://[^\s,]+", masked(s)):
            parts = urlsplit(url)
            host = parts.hostname
            if host in (LOCALHOST, "0.0.0.0", None):
                continue
            assert host in services(), f"{url}: no service {host}"
            if host == "postgres":
                database = parts.path.lstrip("/")
                assert database in databases, f"{url}: postgres-init.sh creates no {database}"
                assert parts.username in roles, f"{url}: no role {parts.username}"


def test_mlflow_auth_config_is_the_file_in_the_image():
    env = environment(services()["mlflow"])
    copies = [args.split() for keyword, args in dockerfile() if keyword == "COPY"]
    destinations = {c[-1]: c[-2] for c in copies}
    assert destinations.get(env["MLFLOW_AUTH_CONFIG_PATH"]) == "docker/mlflow_auth.ini", (
        f"service mlflow: MLFLOW_AUTH_CONFIG_PATH {env['MLFLOW_AUTH_CONFIG_PATH']} is not the "
        "image's copy of docker/mlflow_auth.ini")


# ---- the Dockerfile ----------------------------------------------------------------------------


def test_dockerfile_builds_from_the_lock_on_python_311_slim():
    instructions = dockerfile()
    args = dict(re.findall(r"(\w+)=(\S+)", " ".join(a for k, a in instructions if k == "ARG")))
    bases = [a.split()[0] for k, a in instructions if k == "FROM"]
    final = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], bases[-1])
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", final), f"final stage FROM {final}"
    copies = [a for k, a in instructions if k == "COPY"]
    assert any("uv.lock" in c.split() for c in copies), "Dockerfile: uv.lock is not copied"
    syncs = [a for k, a in instructions if k == "RUN" and "uv sync" in a]
    assert syncs, "Dockerfile: no uv sync"
    for run in syncs:
        assert "--frozen" in run and "--no-dev" in run, f"Dockerfile: {run}"


def test_dockerfile_runs_as_a_non_root_user():
    users = [a for k, a in dockerfile() if k == "USER"]
    assert users, "Dockerfile: no USER"
    assert users[-1].split(":")[0] not in ("root", "0"), f"Dockerfile: USER {users[-1]}"
    assert any("useradd" in a and users[-1] in a.split() for k, a in dockerfile()
               if k == "RUN"), f"Dockerfile: user {users[-1]} is never created"


def test_dockerfile_health_check_hits_livez_of_the_default_command():
    health = [a for k, a in dockerfile() if k == "HEALTHCHECK"]
    assert health and "/livez" in health[-1], "Dockerfile: no HEALTHCHECK on /livez"
    cmd = yaml.safe_load([a for k, a in dockerfile() if k == "CMD"][-1])  # JSON exec form
    assert cmd[:2] == ["fresh-solver", "serve"], f"Dockerfile: CMD {cmd}"
    port = flag_values(cmd)["--port"]
    assert f":{port}/livez" in health[-1], f"Dockerfile: HEALTHCHECK is not on port {port}"


def test_dockerfile_installs_the_package_and_the_dags():
    instructions = dockerfile()
    copies = [a.split() for k, a in instructions if k == "COPY" and "--from" not in a]
    sources = {part for c in copies for part in c[:-1] if not part.startswith("--")}
    for needed in ("fresh_solver", "dags", "uv.lock", "docker/entrypoint.sh"):
        assert needed in sources, f"Dockerfile: {needed} is not copied"
    dags = next(c[-1] for c in copies if c[-2] == "dags")
    env = " ".join(a for k, a in instructions if k == "ENV")
    assert f"AIRFLOW__CORE__DAGS_FOLDER={dags}" in env, f"DAGS_FOLDER is not {dags}"
    entry = [a for k, a in instructions if k == "ENTRYPOINT"]
    assert entry, "Dockerfile: no ENTRYPOINT"
    ignored = (DOCKER / "Dockerfile.dockerignore").read_text().split()
    for source in sources:
        assert (ROOT / source).exists(), f"Dockerfile copies {source}, which does not exist"
        assert f"!{source}" in ignored or f"!{source}/" in ignored, (
            f"Dockerfile copies {source}, which Dockerfile.dockerignore leaves out")


def test_the_env_file_is_git_ignored():
    lines = (ROOT / ".gitignore").read_text().split()
    assert "docker/.env" in lines or "/docker/.env" in lines, ".gitignore: docker/.env"


@pytest.mark.parametrize("script", [*SCRIPTS])
def test_scripts_are_executable(script):
    assert (DOCKER / script).stat().st_mode & 0o111, f"docker/{script} is not executable"


# ---- the lock has what the services import ---------------------------------------------
# Both found by running the compose commands outside Docker (issue 11): with celery 5.7 the
# CeleryExecutor, and without Flask-WTF the auth app, fail at start-up.


def module_names(path: Path) -> set[str]:
    """Names a module defines or imports at its top level (read, not imported)."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.ImportFrom | ast.Import):
            names |= {a.asname or a.name.split(".")[0] for a in node.names}
    return names


def test_the_celery_provider_imports_resolve_in_the_locked_celery():
    utils = site_packages() / "airflow/providers/celery/executors/celery_executor_utils.py"
    for node in ast.parse(utils.read_text()).body:
        # (the top-level `celery` package exports its names lazily: its submodules only)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("celery."):
            path = site_packages() / node.module.replace(".", "/")
            path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
            if not path.is_file():
                continue  # a name imported from a package's submodule; not the case here
            missing = {a.name for a in node.names} - module_names(path) - {
                p.stem for p in path.parent.glob("*.py")} - {
                p.name for p in path.parent.iterdir() if p.is_dir()}
            assert not missing, f"{utils.name} imports {missing} from {node.module}: missing"


def test_the_mlflow_auth_app_dependencies_are_locked():
    try:
        metadata.distribution("Flask-WTF")
    except metadata.PackageNotFoundError:
        pytest.fail("Flask-WTF is not installed: `mlflow server --app-name` with basic-auth "
                    "fails with 'requires the Flask-WTF package'")


# Which services may hold each secret: the ones that use it, no more.
SECRET_HOLDERS = {
    "SERVICE_ACCOUNT_PASSWORD": {"airflow-worker", "airflow-trial-worker", "mlflow-accounts"},
    "LOADER_ACCOUNT_PASSWORD": {"fresh-solver-serve", "mlflow-accounts"},
    "DB_PASSWORD_OPS": {"airflow-worker", "airflow-trial-worker", "fresh-solver-serve",
                        "postgres"},
    "FRESH_SOLVER_EVIDENCE_KEY": {"airflow-worker", "airflow-trial-worker",
                                  "fresh-solver-serve"},
}


@pytest.mark.parametrize("secret", list(SECRET_HOLDERS))
def test_each_secret_reaches_only_the_services_that_use_it(secret):
    raw = (DOCKER / "compose.yaml").read_text()
    # compose interpolates ${VAR}: resolve the file with a marker for the secret, then look
    # for the marker in each service's environment and command.
    marked = yaml.safe_load(re.sub(r"\$\{" + secret + r"(:[^}]*)?\}", "SECRET-MARK", raw))
    holders = {name for name, service in marked["services"].items()
               if "SECRET-MARK" in repr(service.get("environment", {}))}
    assert holders == SECRET_HOLDERS[secret]


def test_mlflow_allowed_hosts_come_from_the_env_file():
    """A TLS reverse proxy under a real host name must be allowed without editing compose."""
    assert "--allowed-hosts" not in services()["mlflow"]["command"]
    hosts = services()["mlflow"]["environment"]["MLFLOW_SERVER_ALLOWED_HOSTS"]
    assert hosts.startswith("${MLFLOW_SERVER_ALLOWED_HOSTS:-mlflow,")
