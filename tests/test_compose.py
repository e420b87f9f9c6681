"""Static checks of the Docker stack: docker-compose.yaml, Dockerfile, .dockerignore, .env.example.

No Docker engine is needed (none runs here): every test reads the real files with plain
PyYAML and compares them with each other and with requirements.txt / pyproject.toml, so a
change that breaks the stack's consistency fails here before anyone runs `docker compose up`.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
ENV_EXAMPLE = ROOT / ".env.example"
REQUIREMENTS = ROOT / "requirements.txt"
PYPROJECT = ROOT / "pyproject.toml"

AIRFLOW_SERVICES = {
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
    "airflow-init",
}
LONG_RUNNING_AIRFLOW = AIRFLOW_SERVICES - {"airflow-init"}
BACKING_SERVICES = {"postgres", "redis"}
ONE_SHOT = {"airflow-init"}
MOUNTED_FOLDERS = ("dags", "plugins", "include", "sql")
AIRFLOW_ROOT = "/opt/airflow"
MARKETMAP_HOME = "/opt/airflow/marketmap"
# Values that may stand in compose as a password default: obvious local-development ones.
DEV_DEFAULTS = {"", "airflow", "marketmap"}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|FERNET|TOKEN|_KEY$", re.IGNORECASE)
VAR_REF = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def compose() -> dict:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict), "docker-compose.yaml is not a mapping"
    return data


@pytest.fixture(scope="module")
def services(compose) -> dict[str, dict]:
    svcs = compose.get("services")
    assert isinstance(svcs, dict) and svcs, "docker-compose.yaml has no services"
    return svcs


def airflow_services(services: dict[str, dict]) -> dict[str, dict]:
    """Every Airflow service, including extra ones (e.g. airflow-cli) built from the anchor."""
    found = {name: svc for name, svc in services.items() if name.startswith("airflow-")}
    assert found.keys() >= AIRFLOW_SERVICES
    return found


def long_running(services: dict[str, dict]) -> dict[str, dict]:
    """Services `docker compose up` keeps running: all but one-shots and profile-only ones."""
    return {name: svc for name, svc in services.items() if name not in ONE_SHOT and not svc.get("profiles")}


def env_of(svc: dict) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def interpolate(value: str) -> str:
    """Resolve compose variables as if .env were empty: ``${X:-d}`` -> d, ``${X}`` -> ''."""

    def repl(m: re.Match) -> str:
        return m["arg"] if m["op"] in (":-", "-") else ""

    return VAR_REF.sub(repl, value.replace("$$", "\0")).replace("\0", "$")


def volume_map(svc: dict) -> dict[str, str]:
    """Container target -> source for a service's volumes (short or long syntax)."""
    mounts = {}
    for vol in svc.get("volumes") or []:
        if isinstance(vol, dict):
            mounts[vol["target"]] = vol.get("source", "")
        else:
            parts = str(vol).split(":")
            assert len(parts) >= 2, f"anonymous volume {vol!r}: give it a name"
            mounts[parts[1]] = parts[0]
    return mounts


def depends_on(svc: dict) -> dict[str, dict]:
    deps = svc.get("depends_on") or {}
    assert isinstance(deps, dict), f"depends_on must use the long form with conditions, got {deps!r}"
    return deps


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with comments dropped and continuations joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instr, _, args = line.partition(" ")
        out.append((instr.upper(), " ".join(args.split())))
    return out


def pinned_version(requirement: str) -> str:
    pattern = re.compile(rf"^{re.escape(requirement)}(\[[^\]]*\])?\s*==\s*([^\s;#]+)", re.IGNORECASE)
    for line in REQUIREMENTS.read_text().splitlines():
        m = pattern.match(line.strip())
        if m:
            return m[2]
    raise AssertionError(f"{requirement} is not pinned with == in requirements.txt")


def base_image() -> re.Match:
    froms = [args for instr, args in dockerfile_instructions() if instr == "FROM"]
    assert froms, "Dockerfile has no FROM"
    m = re.fullmatch(
        r"(?:--platform=\S+ )?apache/airflow:(?P<airflow>\d+\.\d+\.\d+)-python(?P<python>\d+\.\d+)"
        r"(?: AS \S+)?",
        froms[-1],
        flags=re.IGNORECASE,
    )
    assert m, f"final FROM is not apache/airflow:<version>-python<X.Y>: {froms[-1]!r}"
    return m


def satisfies(version: tuple[int, ...], spec: str) -> bool:
    """Whether a Python version meets a simple PEP 440 requires-python specifier."""

    def pad(a: tuple[int, ...], n: int) -> tuple[int, ...]:
        return a + (0,) * (n - len(a))

    for clause in spec.split(","):
        m = re.fullmatch(r"\s*(>=|<=|==|!=|~=|>|<)\s*(\d+(?:\.\d+)*)(\.\*)?\s*", clause)
        assert m, f"unsupported requires-python clause {clause!r}"
        op, bound, wildcard = m[1], tuple(int(x) for x in m[2].split(".")), m[3]
        n = max(len(version), len(bound))
        v, b = pad(version, n), pad(bound, n)
        if wildcard and op in ("==", "!="):
            equal = version[: len(bound)] == bound
            ok = equal if op == "==" else not equal
        else:
            ok = {
                ">=": v >= b,
                "<=": v <= b,
                ">": v > b,
                "<": v < b,
                "==": v == b,
                "!=": v != b,
                "~=": v >= b and version[: len(bound) - 1] == bound[:-1],
            }[op]
        if not ok:
            return False
    return True


def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f".env.example: not KEY=VALUE: {line!r}"
        values[key.strip()] = value.strip().strip("'\"")
    return values


# --------------------------------------------------------------------------- compose: shape


def test_compose_parses_with_merge_keys_resolved(compose, services):
    assert "x-airflow-common" in compose
    for name in AIRFLOW_SERVICES:
        assert "<<" not in services[name], f"{name}: merge key not resolved"
        assert env_of(services[name]), f"{name}: environment missing (anchor not merged?)"


def test_expected_services_exist(services):
    expected = AIRFLOW_SERVICES | BACKING_SERVICES
    assert expected <= services.keys(), f"missing services: {sorted(expected - services.keys())}"


def test_airflow_commands(services):
    assert services["airflow-apiserver"]["command"] == "api-server"
    assert "8080:8080" in [str(p) for p in services["airflow-apiserver"].get("ports", [])]
    assert services["airflow-scheduler"]["command"] == "scheduler"
    assert services["airflow-dag-processor"]["command"] == "dag-processor"
    assert services["airflow-triggerer"]["command"] == "triggerer"
    assert services["airflow-worker"]["command"] == "celery worker"
    for name, svc in airflow_services(services).items():
        assert env_of(svc).get("AIRFLOW__CORE__EXECUTOR") == "CeleryExecutor", name
        broker = urlsplit(interpolate(env_of(svc).get("AIRFLOW__CELERY__BROKER_URL", "")))
        assert (broker.scheme, broker.hostname) == ("redis", "redis"), (
            f"{name}: broker is not the redis service"
        )


def test_every_long_running_service_has_a_healthcheck(services):
    running = long_running(services)
    assert running.keys() >= LONG_RUNNING_AIRFLOW | BACKING_SERVICES
    for name, svc in running.items():
        hc = svc.get("healthcheck")
        assert isinstance(hc, dict) and not hc.get("disable"), f"{name}: no healthcheck"
        test = hc.get("test")
        assert test and test not in (["NONE"], "NONE"), f"{name}: empty healthcheck test"
        assert svc.get("restart") in ("always", "unless-stopped", "on-failure"), f"{name}: no restart policy"


def test_depends_on_waits_for_health(services):
    healthy = {name for name, svc in services.items() if svc.get("healthcheck")}
    for name, svc in services.items():
        for dep, spec in depends_on(svc).items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            condition = (spec or {}).get("condition")
            if dep in ONE_SHOT:
                assert condition == "service_completed_successfully", f"{name} -> {dep}: {condition}"
            elif dep in healthy:
                assert condition == "service_healthy", f"{name} -> {dep}: {condition}"
    for name in LONG_RUNNING_AIRFLOW:
        deps = depends_on(services[name])
        for dep in BACKING_SERVICES:
            assert deps.get(dep, {}).get("condition") == "service_healthy", f"{name} does not wait for {dep}"
        assert deps.get("airflow-init", {}).get("condition") == "service_completed_successfully", name


# --------------------------------------------------------------------------- compose: image and mounts


def test_airflow_image_is_built_not_pip_installed_at_start(services):
    assert "_PIP_ADDITIONAL_REQUIREMENTS" not in COMPOSE_FILE.read_text()
    images = set()
    for name, svc in airflow_services(services).items():
        build = svc.get("build")
        context = build.get("context") if isinstance(build, dict) else build
        assert context in (".", "./"), f"{name}: not built from the project's Dockerfile ({build!r})"
        dockerfile = build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else "Dockerfile"
        assert (ROOT / dockerfile).is_file(), f"{name}: {dockerfile} missing"
        images.add(svc.get("image"))
    assert len(images) == 1, f"Airflow services should share one image tag, got {images}"


@pytest.mark.parametrize("folder", MOUNTED_FOLDERS)
def test_project_folders_mounted_into_every_airflow_service(services, folder):
    assert (ROOT / folder).is_dir(), f"./{folder} does not exist in the repo"
    for name, svc in airflow_services(services).items():
        mounts = volume_map(svc)
        target = f"{AIRFLOW_ROOT}/{folder}"
        assert target in mounts, f"{name}: ./{folder} is not mounted at {target}"
        source = interpolate(mounts[target])
        assert source.startswith("."), f"{name}: {target} should be a bind mount of ./{folder}"
        assert (ROOT / source).resolve() == (ROOT / folder).resolve(), f"{name}: {target} <- {source}"


def test_logs_and_marketmap_home_are_volumes(compose, services):
    named = set((compose.get("volumes") or {}).keys())
    for name, svc in airflow_services(services).items():
        mounts = volume_map(svc)
        for target in (f"{AIRFLOW_ROOT}/logs", MARKETMAP_HOME):
            assert target in mounts, f"{name}: nothing mounted at {target}"
            source = mounts[target]
            assert source in named or source.startswith("."), f"{name}: {target} <- undeclared {source}"
        assert env_of(svc).get("MARKETMAP_HOME") == MARKETMAP_HOME, name


def test_examples_off_and_dags_paused(services):
    for name, svc in airflow_services(services).items():
        env = env_of(svc)
        assert env.get("AIRFLOW__CORE__LOAD_EXAMPLES", "").lower() == "false", name
        assert env.get("AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION", "").lower() == "true", name


def test_execution_api_url_points_at_the_api_server(services):
    for name, svc in airflow_services(services).items():
        url = urlsplit(interpolate(env_of(svc).get("AIRFLOW__CORE__EXECUTION_API_SERVER_URL", "")))
        assert url.hostname in services, f"{name}: execution API host {url.hostname!r} is no service"
        assert services[url.hostname].get("command") == "api-server", name
        assert url.port == 8080 and url.path.rstrip("/") == "/execution", name


def test_shared_secrets_are_identical_in_every_airflow_service(services):
    shared = ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY")
    for key in shared:
        values = {env_of(svc).get(key) for svc in airflow_services(services).values()}
        assert len(values) == 1 and None not in values, f"{key} differs or is missing: {values}"


# --------------------------------------------------------------------------- compose: databases


def postgres_of(services: dict[str, dict], url: str) -> tuple[dict, object]:
    parts = urlsplit(interpolate(url))
    assert parts.hostname in services, f"{url}: host {parts.hostname!r} is no compose service"
    return services[parts.hostname], parts


def test_marketmap_warehouse_url(services):
    for name, svc in airflow_services(services).items():
        env = env_of(svc)
        url = env.get("MARKETMAP_WAREHOUSE_URL", "")
        assert url.startswith("postgresql+psycopg://"), f"{name}: MARKETMAP_WAREHOUSE_URL={url!r}"
        db_svc, parts = postgres_of(services, url)
        db_env = {k: interpolate(v) for k, v in env_of(db_svc).items()}
        assert parts.path.lstrip("/") == db_env.get("POSTGRES_DB"), f"{name}: warehouse database name"
        assert parts.username == db_env.get("POSTGRES_USER"), f"{name}: warehouse user"
        assert parts.password == db_env.get("POSTGRES_PASSWORD"), f"{name}: warehouse password default"
        assert parts.hostname in depends_on(svc), f"{name} does not wait for {parts.hostname}"
        _, meta = postgres_of(services, env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
        assert (parts.hostname, parts.path) != (meta.hostname, meta.path), "warehouse is Airflow's own DB"


def test_metadata_db_url_matches_postgres_service(services):
    for name, svc in airflow_services(services).items():
        env = env_of(svc)
        for key in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CELERY__RESULT_BACKEND"):
            db_svc, parts = postgres_of(services, env[key])
            db_env = {k: interpolate(v) for k, v in env_of(db_svc).items()}
            assert parts.username == db_env.get("POSTGRES_USER"), f"{name}: {key} user"
            assert parts.password == db_env.get("POSTGRES_PASSWORD"), f"{name}: {key} password default"
            assert parts.path.lstrip("/") == db_env.get("POSTGRES_DB"), f"{name}: {key} database"


def test_postgres_versions_supported_by_psycopg3(services):
    postgres = {name: svc["image"] for name, svc in services.items() if "postgres" in str(svc.get("image"))}
    assert "postgres" in postgres and len(postgres) >= 2, f"expected metadata + warehouse DBs: {postgres}"
    for name, image in postgres.items():
        m = re.fullmatch(r"(?:docker\.io/)?(?:library/)?postgres:(\d+)(?:[.\-]\S*)?", image)
        assert m, f"{name}: pin the postgres image to a major version, got {image!r}"
        assert int(m[1]) >= 12, f"{name}: PostgreSQL {m[1]} is older than psycopg 3 supports"


# --------------------------------------------------------------------------- Dockerfile


def test_base_image_matches_pinned_airflow():
    assert base_image()["airflow"] == pinned_version("apache-airflow")


def test_base_image_python_matches_requires_python():
    requires = tomllib.loads(PYPROJECT.read_text())["project"]["requires-python"]
    python = tuple(int(x) for x in base_image()["python"].split("."))
    assert satisfies(python, requires), f"python{base_image()['python']} does not satisfy {requires!r}"


def test_dockerfile_installs_requirements_and_marketmap_as_airflow_user():
    user = "airflow"  # the official image's default user
    copied: list[str] = []
    pip_runs: list[tuple[str, str, list[str]]] = []
    for instr, args in dockerfile_instructions():
        if instr == "USER":
            user = args.split(":")[0]
        elif instr in ("COPY", "ADD"):
            copied.extend(a for a in args.split()[:-1] if not a.startswith("--"))
        elif instr == "RUN" and "pip install" in args:
            pip_runs.append((user, args, list(copied)))
    assert pip_runs, "Dockerfile installs nothing with pip"
    for user, args, _ in pip_runs:
        assert user == "airflow", f"pip install must run as the airflow user, not {user}: {args}"
    req = [(args, c) for _, args, c in pip_runs if re.search(r"-r \S*requirements\.txt", args)]
    assert req, "Dockerfile does not pip install -r requirements.txt"
    assert "requirements.txt" in req[0][1], "requirements.txt is not copied before it is installed"
    project = [(args, c) for _, args, c in pip_runs if "--no-deps" in args]
    assert project, "marketmap is not installed (pip install --no-deps [-e] <project>)"
    assert {"pyproject.toml", "include"} <= set(project[0][1]), "install marketmap after copying its sources"


def test_dockerfile_include_path_is_the_mounted_one(services):
    """The image installs marketmap from the folder compose mounts ./include on."""
    copies = [args.split() for instr, args in dockerfile_instructions() if instr == "COPY"]
    dest = [a[-1].rstrip("/") for a in copies if "include" in a[:-1]]
    assert dest == [f"{AIRFLOW_ROOT}/include"], f"include copied to {dest}"
    assert f"{AIRFLOW_ROOT}/include" in volume_map(services["airflow-worker"])


def test_dockerignore_excludes_local_state():
    patterns = {line.strip().rstrip("/") for line in DOCKERIGNORE.read_text().splitlines()}
    for needed in (".venv", ".airflow", ".git", ".env", "**/__pycache__"):
        assert needed in patterns, f".dockerignore does not exclude {needed}"
    assert "*" not in patterns, ".dockerignore drops the whole context"
    for kept in ("include", "dags", "plugins", "sql", "requirements.txt", "pyproject.toml"):
        assert kept not in patterns, f".dockerignore drops {kept}, which the image needs"


# --------------------------------------------------------------------------- secrets


def compose_env_items(services: dict[str, dict]):
    for name, svc in services.items():
        for key, value in env_of(svc).items():
            yield name, key, value


def test_compose_secrets_come_from_env(services):
    for name, key, value in compose_env_items(services):
        if not SECRET_NAME.search(key):
            continue
        m = VAR_REF.fullmatch(value)
        if "PASSWORD" in key.upper():
            ok = value in DEV_DEFAULTS or (
                m is not None and (m["op"] in (None, ":?", "?") or m["arg"] in DEV_DEFAULTS)
            )
        else:  # keys and secrets: no default at all, the value must come from .env
            ok = m is not None and m["op"] in (None, ":?", "?")
        assert ok, f"{name}: {key} must come from ${{VAR}} (passwords may default to a dev value): {value!r}"


def test_compose_urls_carry_no_literal_passwords(services):
    for name, key, value in compose_env_items(services):
        for m in re.finditer(r"://([^:/@\s]*):([^@\s]*)@", value):
            password = m[2]
            ref = VAR_REF.fullmatch(password)
            ok = password in DEV_DEFAULTS or (
                ref is not None and (ref["op"] is None or ref["arg"] in DEV_DEFAULTS)
            )
            assert ok, f"{name}: {key} embeds a literal password"


def looks_generated(token: str) -> bool:
    """A Fernet key, JWT secret or API token: long, mixing upper case, lower case and digits."""
    return (
        len(token) >= 24
        and re.fullmatch(r"[A-Za-z0-9+/_\-]+=*", token) is not None
        and all(re.search(cls, token) for cls in ("[a-z]", "[A-Z]", "[0-9]"))
    )


def test_no_generated_looking_secrets_committed():
    for path in (COMPOSE_FILE, ENV_EXAMPLE, DOCKERFILE):
        for line in path.read_text().splitlines():
            if line.lstrip().startswith("#"):
                continue
            for token in re.split(r"[\s'\"=:@/{}]+", line):
                assert not looks_generated(token), f"{path.name}: secret-looking value {token!r}"


def test_env_example_has_only_placeholders():
    values = env_example()
    assert values, ".env.example is empty"
    for key, value in values.items():
        if SECRET_NAME.search(key):
            assert value == "" or value.lower().startswith("change-me"), (
                f".env.example: {key} is not a placeholder"
            )


def test_env_example_matches_compose_variables():
    text = COMPOSE_FILE.read_text().replace("$$", "")
    refs = list(VAR_REF.finditer(text))
    referenced = {m["name"] for m in refs}
    required = {m["name"] for m in refs if m["op"] in (":?", "?")}
    documented = env_example().keys()
    assert required, "compose requires no secrets from .env"
    assert required <= documented, f".env.example lacks required {sorted(required - documented)}"
    assert documented <= referenced, f".env.example sets unused {sorted(documented - referenced)}"


def test_env_file_is_git_ignored():
    ignored = {line.strip().lstrip("/") for line in (ROOT / ".gitignore").read_text().splitlines()}
    assert ".env" in ignored


def test_init_migrates_the_warehouse_and_creates_the_pools():
    """airflow-init prepares what the DAGs need before the scheduler starts them."""
    compose = yaml.safe_load((Path(__file__).resolve().parents[1] / "docker-compose.yaml").read_text())
    script = "\n".join(compose["services"]["airflow-init"]["command"])
    assert "marketmap.cli migrate" in script and "marketmap.cli pools --apply" in script
    assert compose["services"]["airflow-init"]["environment"]["_AIRFLOW_DB_MIGRATE"] == "true"


def test_fab_auth_manager_with_per_client_roles(services):
    """Production default: the FAB auth manager (provider pinned) and the roles synced at init."""
    fab = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
    for name, svc in airflow_services(services).items():
        assert env_of(svc).get("AIRFLOW__CORE__AUTH_MANAGER") == fab, name
    assert pinned_version("apache-airflow-providers-fab")
    init = services["airflow-init"]
    script = "\n".join(init["command"]) if isinstance(init["command"], list) else init["command"]
    assert env_of(init).get("_AIRFLOW_DB_MIGRATE") == "true"  # FAB's tables exist before the sync
    lines = [line.strip() for line in script.splitlines()]
    assert "/entrypoint python -m marketmap.cli access sync" in lines, "airflow-init does not create the roles"
    # The image's entrypoint passes any first word but bash/python to `airflow` (`airflow marketmap …`).
    for line in lines:
        if line.startswith("/entrypoint "):
            assert line.split()[1] in {"airflow", "bash", "python"}, f"airflow-init: {line!r} would run as airflow …"
