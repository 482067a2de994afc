"""Static checks of the container setup (docker/): no Docker engine needed.

The compose file, the Dockerfile, the warehouse init SQL and .env.example are read as
text/YAML and checked against each other and against the repository: the services the
stack needs, one image for every Airflow component, the common environment (CeleryExecutor,
the two winback connections on the separate warehouse server, telemetry off), satisfiable
start-up order, COPY sources that exist, and the image's Airflow and Python versions equal
to the project's pins. Only PyYAML and the standard library are used.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import re
import shlex
import tomllib
import urllib.parse
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
COMPOSE_FILE = DOCKER / "docker-compose.yaml"
DOCKERFILE = DOCKER / "Dockerfile"
DOCKERIGNORE = DOCKER / "Dockerfile.dockerignore"
ENV_EXAMPLE = DOCKER / ".env.example"
INIT_DIR = DOCKER / "warehouse-init"

REQUIRED_SERVICES = {
    "postgres", "redis", "warehouse", "airflow-apiserver", "airflow-scheduler",
    "airflow-dag-processor", "airflow-worker", "airflow-triggerer", "airflow-init",
}
# Components that run until stopped (and so need a healthcheck); airflow-init is one-shot,
# airflow-cli an on-demand helper.
LONG_RUNNING = REQUIRED_SERVICES - {"airflow-init"}
TELEMETRY_OFF = {
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
    "GX_ANALYTICS_ENABLED": "False",
    "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
    "SCARF_ANALYTICS": "false",
    "DO_NOT_TRACK": "1",
}
LANDING = "/opt/airflow/landing"


# ----------------------------------------------------------------------------- helpers
def interpolate(text: str, env: dict[str, str]) -> str:
    """Docker Compose variable interpolation: $$, $NAME, ${NAME}, ${NAME:-default},
    ${NAME-default}, ${NAME:?error}, ${NAME?error}, ${NAME:+alt}, ${NAME+alt} (nested)."""
    out, i = [], 0
    while i < len(text):
        char = text[i]
        if char != "$":
            out.append(char)
            i += 1
            continue
        if text.startswith("$$", i):
            out.append("$")
            i += 2
            continue
        if text.startswith("${", i):
            depth, j = 1, i + 2
            while j < len(text) and depth:
                if text.startswith("${", j):
                    depth, j = depth + 1, j + 2
                    continue
                depth -= text[j] == "}"
                j += 1
            if depth:
                raise ValueError(f"unclosed ${{ in {text!r}")
            out.append(_expand(text[i + 2:j - 1], env))
            i = j
            continue
        match = re.match(r"\$([A-Za-z_][A-Za-z0-9_]*)", text[i:])
        if not match:
            raise ValueError(f"invalid $ in {text!r}")
        out.append(env.get(match.group(1), ""))
        i += match.end()
    return "".join(out)


def _expand(body: str, env: dict[str, str]) -> str:
    match = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])(.*))?", body, flags=re.DOTALL)
    if not match:
        raise ValueError(f"invalid variable reference ${{{body}}}")
    name, op, arg = match.group(1), match.group(2), match.group(3) or ""
    value = env.get(name)
    is_set, non_empty = value is not None, bool(value)
    present = non_empty if (op or "").startswith(":") else is_set
    if op in (":-", "-"):
        return value if present else interpolate(arg, env)
    if op in (":?", "?"):
        if not present:
            raise KeyError(f"required variable {name}: {arg}")
        return value
    if op in (":+", "+"):
        return interpolate(arg, env) if present else ""
    return value or ""


def variable_references(text: str) -> list[tuple[str, str | None]]:
    """(name, default) of every ${NAME...} in text (a default only for :- and -)."""
    refs = []
    for match in re.finditer(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?", text.replace("$$", "")):
        refs.append((match.group(1), match.group(3) if match.group(2) else None))
    return refs


def walk_strings(node):
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from walk_strings(key)
            yield from walk_strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk_strings(item)


def as_mapping(environment) -> dict[str, str]:
    """A service's `environment`, list or mapping form, as a dict of strings."""
    if environment is None:
        return {}
    if isinstance(environment, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in environment)
    return {str(key): "" if value is None else str(value) for key, value in environment.items()}


def resolved_env(service: dict, env: dict[str, str] | None = None) -> dict[str, str]:
    return {key: interpolate(value, env or {}) for key, value in as_mapping(service.get("environment")).items()}


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction: continuations joined, comments dropped."""
    instructions, current = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if current and line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            current += line[:-1].rstrip() + " "
            continue
        current += line
        if current.strip():
            keyword, _, args = current.strip().partition(" ")
            instructions.append((keyword.upper(), args.strip()))
        current = ""
    if current.strip():
        keyword, _, args = current.strip().partition(" ")
        instructions.append((keyword.upper(), args.strip()))
    return instructions


def copy_sources(instructions: list[tuple[str, str]]) -> list[str]:
    """Build-context source paths of every COPY/ADD (not those copying from another stage)."""
    sources = []
    for keyword, args in instructions:
        if keyword not in ("COPY", "ADD"):
            continue
        words = json.loads(args) if args.startswith("[") else shlex.split(args)
        flags = [word for word in words if word.startswith("--")]
        if any(flag.startswith("--from") for flag in flags):
            continue
        paths = [word for word in words if not word.startswith("--")]
        assert len(paths) >= 2, f"{keyword} {args!r} needs a source and a destination"
        sources.extend(paths[:-1])
    return sources


def copy_pairs(instructions: list[tuple[str, str]]) -> list[tuple[list[str], str]]:
    pairs = []
    for keyword, args in instructions:
        if keyword == "COPY":
            paths = [word for word in shlex.split(args) if not word.startswith("--")]
            pairs.append((paths[:-1], paths[-1]))
    return pairs


def env_instructions(instructions: list[tuple[str, str]]) -> dict[str, str]:
    """Variables set by ENV instructions (KEY=VALUE form and the legacy KEY VALUE form)."""
    values: dict[str, str] = {}
    for keyword, args in instructions:
        if keyword != "ENV":
            continue
        words = shlex.split(args)
        if words and "=" not in words[0]:
            values[words[0]] = " ".join(words[1:])
            continue
        for word in words:
            key, _, value = word.partition("=")
            values[key] = value
    return values


def base_image(instructions: list[tuple[str, str]]) -> str:
    for keyword, args in instructions:
        if keyword == "FROM":
            return [word for word in args.split() if not word.startswith("--")][0]
    raise AssertionError("the Dockerfile has no FROM")


def pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^\s*([A-Za-z0-9._-]+)(?:\[[^\]]*\])?\s*==\s*([^\s;#]+)", line)
        if match:
            found[match.group(1).lower().replace("_", "-")] = match.group(2)
    return found


def env_file_entries(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of an env file (commented-out examples excluded)."""
    entries = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", line.strip())
        if match:
            entries[match.group(1)] = match.group(2).strip().strip("'\"")
    return entries


def settings_env_names() -> set[str]:
    """Environment names winback.config.Settings reads, from its source (not by importing it)."""
    tree = ast.parse((ROOT / "include" / "winback" / "config.py").read_text())
    settings = next(node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "Settings")
    names = set()
    for node in settings.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id != "model_config":
            names.add(f"WINBACK_{node.target.id.upper()}")
    for node in ast.walk(settings):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "AliasChoices":
            names.update(arg.value for arg in node.args if isinstance(arg, ast.Constant))
    return names


def ignored_by(patterns: list[str], path: str) -> str | None:
    """The .dockerignore pattern that excludes path (or one of its parents), if any."""
    parts = Path(path.rstrip("/")).parts
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        if pattern.startswith("!"):
            continue
        for candidate in candidates:
            if fnmatch.fnmatch(candidate, pattern.rstrip("/")) or (
                pattern.startswith("**/") and fnmatch.fnmatch(candidate.split("/")[-1], pattern[3:])
            ):
                return pattern
    return None


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


@pytest.fixture(scope="module")
def airflow_services(services) -> dict:
    return {name: spec for name, spec in services.items() if name.startswith("airflow-")}


@pytest.fixture(scope="module")
def instructions() -> list[tuple[str, str]]:
    return dockerfile_instructions(DOCKERFILE.read_text())


# ----------------------------------------------------------------------------- the helpers themselves
def test_interpolation_follows_compose_rules():
    assert interpolate("${A:-x}", {}) == "x"
    assert interpolate("${A:-x}", {"A": ""}) == "x"
    assert interpolate("${A-x}", {"A": ""}) == ""
    assert interpolate("${A:-x}", {"A": "y"}) == "y"
    assert interpolate("${A:-${B:-z}}/db", {}) == "z/db"
    assert interpolate('ping "$${HOSTNAME}"', {}) == 'ping "${HOSTNAME}"'
    with pytest.raises(KeyError):
        interpolate("${A:?set A}", {})
    assert variable_references("u=${U:-a} $${NOT_A_VAR} ${P}") == [("U", "a"), ("P", None)]


def test_dockerfile_parsing_finds_missing_sources_and_skips_stage_copies():
    text = (
        "FROM python:3.11 AS base\n"
        "# a comment\n"
        "COPY --chown=a:0 requirements.txt \\\n"
        "     # comment inside a continuation\n"
        "     no-such-file.txt /app/\n"
        "COPY --from=base /usr/lib /usr/lib\n"
        'COPY ["dags/", "/opt/airflow/dags/"]\n'
        "ENV A=1 \\\n    B=two\n"
    )
    parsed = dockerfile_instructions(text)
    assert [keyword for keyword, _ in parsed] == ["FROM", "COPY", "COPY", "COPY", "ENV"]
    sources = copy_sources(parsed)
    assert sources == ["requirements.txt", "no-such-file.txt", "dags/"]
    assert [source for source in sources if not (ROOT / source).exists()] == ["no-such-file.txt"]
    assert env_instructions(parsed) == {"A": "1", "B": "two"}
    assert base_image(parsed) == "python:3.11"
    assert ignored_by([".venv", "dbt_project/target"], "dbt_project/target/manifest.json") == "dbt_project/target"
    assert ignored_by([".venv", "**/__pycache__"], "include/winback/__pycache__") == "**/__pycache__"
    assert ignored_by([".venv"], "include/") is None


# ----------------------------------------------------------------------------- docker-compose.yaml
def test_compose_is_valid_yaml_with_the_required_services(compose, services):
    assert isinstance(compose, dict) and isinstance(services, dict)
    missing = REQUIRED_SERVICES - set(services)
    assert not missing, f"services missing from docker-compose.yaml: {sorted(missing)}"
    assert set(compose.get("volumes") or {}) >= {"postgres-db-volume", "warehouse-db-volume"}


def test_every_airflow_service_runs_the_image_built_from_the_dockerfile(airflow_services):
    images = set()
    for name, spec in airflow_services.items():
        build = spec.get("build")
        assert isinstance(build, dict), f"{name} does not build the winback image"
        context = (DOCKER / build["context"]).resolve()
        assert context == ROOT, f"{name}: build context {context} is not the repository root"
        assert (context / build["dockerfile"]).resolve() == DOCKERFILE.resolve(), f"{name}: wrong Dockerfile"
        images.add(spec.get("image"))
    assert len(images) == 1, f"the Airflow services use different images: {images}"
    image = interpolate(images.pop(), {})
    assert image and not image.startswith("apache/airflow"), f"{image!r} is the stock image, not winback's"


def test_every_airflow_service_has_the_common_environment(compose, airflow_services):
    common = as_mapping(compose["x-airflow-common"]["environment"])
    for name, spec in airflow_services.items():
        raw = as_mapping(spec.get("environment"))
        missing = {key for key, value in common.items() if raw.get(key) != value}
        assert not missing, f"{name} lacks or changes common variables: {sorted(missing)}"
        env = resolved_env(spec)
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["AIRFLOW_CONN_WAREHOUSE"].startswith("postgresql://"), name
        assert env["AIRFLOW_CONN_SALES_SOURCE"].startswith("postgresql://"), name
        assert env["AIRFLOW__CORE__LOAD_EXAMPLES"].lower() == "false", name
        for key, value in TELEMETRY_OFF.items():
            assert env.get(key) == value, f"{name}: {key} must be {value!r}, is {env.get(key)!r}"
        assert env["WINBACK_LANDING_URL"] == LANDING, name
        targets = [str(volume).split(":")[1] for volume in spec.get("volumes") or []]
        assert LANDING in targets, f"{name} has no volume at {LANDING}"
        for key in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CELERY__RESULT_BACKEND",
                    "AIRFLOW__CELERY__BROKER_URL", "AIRFLOW__CORE__AUTH_MANAGER",
                    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL", "AIRFLOW__API_AUTH__JWT_SECRET"):
            assert env.get(key), f"{name}: {key} is not set"


def test_airflow_components_reach_the_right_servers(compose, services):
    env = resolved_env(compose["x-airflow-common"])
    assert urllib.parse.urlsplit(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]).hostname == "postgres"
    assert urllib.parse.urlsplit(env["AIRFLOW__CELERY__RESULT_BACKEND"]).hostname == "postgres"
    assert urllib.parse.urlsplit(env["AIRFLOW__CELERY__BROKER_URL"]).hostname == "redis"
    api = urllib.parse.urlsplit(env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
    assert api.hostname == "airflow-apiserver" and api.path == "/execution/"
    assert api.port == 8080 and any(str(port).endswith(":8080") for port in services["airflow-apiserver"]["ports"])


def test_connections_point_at_the_warehouse_service_and_its_init_databases(compose, services):
    env = resolved_env(compose["x-airflow-common"])
    created = set()
    for script in sorted(INIT_DIR.glob("*.sql")):
        created |= set(re.findall(r"CREATE DATABASE\s+\"?([A-Za-z_][A-Za-z0-9_]*)", script.read_text(), re.I))
    assert {"winback", "winback_source"} <= created, f"warehouse-init creates {sorted(created)}"
    for key, database in (("AIRFLOW_CONN_WAREHOUSE", "winback"), ("AIRFLOW_CONN_SALES_SOURCE", "winback_source")):
        uri = urllib.parse.urlsplit(env[key])
        assert uri.scheme in ("postgres", "postgresql"), key
        assert uri.hostname == "warehouse", f"{key} points at {uri.hostname}, not the warehouse service"
        assert uri.port == 5432 and uri.username and uri.password, key
        assert uri.path.lstrip("/") == database, key
    warehouse = services["warehouse"]
    assert warehouse["image"].startswith("postgres:")
    mounts = {str(volume).split(":")[1]: str(volume).split(":")[0] for volume in warehouse["volumes"]}
    assert (DOCKER / mounts["/docker-entrypoint-initdb.d"]).resolve() == INIT_DIR.resolve()
    # The warehouse superuser is the user of both connections.
    superuser = interpolate(warehouse["environment"]["POSTGRES_USER"], {})
    assert urllib.parse.urlsplit(env["AIRFLOW_CONN_WAREHOUSE"]).username == superuser


def test_the_warehouse_is_a_different_server_from_the_airflow_metadata_db(compose, services):
    assert "warehouse" in services and "postgres" in services
    env = resolved_env(compose["x-airflow-common"])
    metadata_host = urllib.parse.urlsplit(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]).hostname
    warehouse_host = urllib.parse.urlsplit(env["AIRFLOW_CONN_WAREHOUSE"]).hostname
    assert metadata_host == "postgres" and warehouse_host == "warehouse"
    assert metadata_host != warehouse_host

    def data_volume(service: str) -> str:
        for volume in services[service]["volumes"]:
            source, target = str(volume).split(":")[:2]
            if target == "/var/lib/postgresql/data":
                return source
        raise AssertionError(f"{service} has no data volume")

    assert data_volume("postgres") != data_volume("warehouse")


def test_the_worker_depends_on_redis_and_the_metadata_db(services):
    depends = services["airflow-worker"]["depends_on"]
    for needed in ("redis", "postgres"):
        assert needed in depends, f"airflow-worker does not depend on {needed}"
        assert depends[needed]["condition"] == "service_healthy", needed
    assert depends["airflow-init"]["condition"] == "service_completed_successfully"


def test_start_up_order_is_satisfiable(services):
    for name in LONG_RUNNING:
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    for name, spec in services.items():
        for target, rule in (spec.get("depends_on") or {}).items():
            assert target in services, f"{name} depends on unknown service {target}"
            condition = rule["condition"]
            if condition == "service_healthy":
                assert services[target].get("healthcheck"), f"{name} waits for {target} to be healthy: no healthcheck"
            elif condition == "service_completed_successfully":
                assert services[target].get("restart", "no") in ("no", False), f"{target} never completes"
            else:
                assert condition == "service_started", f"{name}: unknown condition {condition}"
    for name in set(services) - {"postgres", "redis", "warehouse", "airflow-init", "airflow-cli"}:
        assert "airflow-init" in services[name].get("depends_on", {}), f"{name} may start before airflow-init"


def test_every_compose_variable_has_a_default_documented_in_env_example(compose):
    refs = [ref for text in walk_strings(compose) for ref in variable_references(text)]
    assert refs, "docker-compose.yaml reads no variables from .env"
    defaults: dict[str, set[str]] = {}
    for name, default in refs:
        assert default is not None, f"${{{name}}} has no default: `docker compose up` without .env would break"
        defaults.setdefault(name, set()).add(default)
    inconsistent = {name: values for name, values in defaults.items() if len(values) > 1}
    assert not inconsistent, f"the same variable has different defaults: {inconsistent}"
    documented = env_file_entries(ENV_EXAMPLE)
    undocumented = set(defaults) - set(documented)
    assert not undocumented, f"not documented in docker/.env.example: {sorted(undocumented)}"
    for name, value in documented.items():
        if name in defaults:
            assert value == next(iter(defaults[name])), f".env.example {name}={value!r} differs from the compose default"
        else:
            assert name.startswith("WINBACK_"), f".env.example sets {name}, which docker-compose.yaml never reads"


def test_winback_settings_named_in_docker_files_exist(compose):
    known = settings_env_names()
    assert {"WINBACK_LANDING_URL", "WINBACK_PROJECT_DIR", "AIRFLOW_CONN_WAREHOUSE"} <= known
    named = set(re.findall(r"\b(WINBACK_[A-Z0-9_]+)=", ENV_EXAMPLE.read_text()))
    named |= {key for key in as_mapping(compose["x-airflow-common"]["environment"]) if key.startswith("WINBACK_")}
    named |= {key for key in env_instructions(dockerfile_instructions(DOCKERFILE.read_text())) if key.startswith("WINBACK_")}
    unknown = named - known
    assert not unknown, f"not settings of winback.config: {sorted(unknown)}"
    example = ENV_EXAMPLE.read_text()
    overrides = re.search(r"WINBACK_METRIC_OVERRIDES='(.*)'", example)
    assert overrides and isinstance(json.loads(overrides.group(1)), dict)


def test_no_secrets_beyond_local_placeholders(compose):
    env = resolved_env(compose["x-airflow-common"])
    for key in ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY"):
        assert "change-me" in env[key], f"the default {key} must be an obvious placeholder"
    # docker/.env (the real values) is kept out of git and out of the image.
    assert ".env" in (DOCKER / ".gitignore").read_text().splitlines()
    assert "docker/.env" in DOCKERIGNORE.read_text().splitlines()


# ----------------------------------------------------------------------------- Dockerfile
def test_every_copy_source_exists_in_the_repo_and_is_in_the_build_context(instructions):
    sources = copy_sources(instructions)
    assert {"requirements.txt", "constraints.txt", "pyproject.toml", "include/", "dags/", "dbt_project/"} <= set(sources)
    missing = [source for source in sources if not (ROOT / source).exists()]
    assert not missing, f"COPY sources missing from the repository: {missing}"
    patterns = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert {".venv", ".winback", ".git"} <= set(patterns), "local state would be sent to the build"
    excluded = {source: ignored_by(patterns, source) for source in sources if ignored_by(patterns, source)}
    assert not excluded, f"COPY sources excluded by {DOCKERIGNORE.name}: {excluded}"


def test_the_base_image_airflow_version_equals_the_requirements_pin(instructions):
    image = base_image(instructions)
    repository, _, tag = image.partition(":")
    assert repository == "apache/airflow", image
    match = re.fullmatch(r"(\d+\.\d+\.\d+)-python(\d+\.\d+)", tag)
    assert match, f"tag {tag!r} does not name an Airflow and a Python version"
    assert match.group(1) == pins(ROOT / "requirements.txt")["apache-airflow"]
    assert match.group(1) == pins(ROOT / "constraints.txt")["apache-airflow"]


def test_the_image_python_is_the_projects_python(instructions):
    tag = base_image(instructions).partition(":")[2]
    image_python = tag.rpartition("-python")[2]
    assert image_python == "3.11"
    makefile = re.search(r"^PYTHON\s*\?=\s*python(\d+\.\d+)", (ROOT / "Makefile").read_text(), re.M)
    assert makefile and makefile.group(1) == image_python
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["tool"]["ruff"]["target-version"] == "py" + image_python.replace(".", "")
    minimum = re.fullmatch(r">=\s*(\d+)\.(\d+)", pyproject["project"]["requires-python"])
    assert minimum and tuple(map(int, minimum.groups())) <= tuple(map(int, image_python.split(".")))


def test_dependencies_then_the_package_are_installed_as_the_airflow_user(instructions):
    runs = [(index, args) for index, (keyword, args) in enumerate(instructions) if keyword == "RUN"]
    deps = [index for index, args in runs
            if "pip install" in args and "-r requirements.txt" in args and "-c constraints.txt" in args]
    package = [index for index, args in runs if re.search(r"pip install .*--no-deps \.(\s|$)", args)]
    assert len(deps) == 1 and len(package) == 1, "expected one pinned-deps install and one package install"
    assert deps[0] < package[0]
    for index in (deps[0], package[0]):
        users = [args for keyword, args in instructions[:index] if keyword == "USER"]
        assert users and users[-1] == "airflow", "pip must run as the airflow user"
    copied_before = {source for sources, _ in copy_pairs(instructions[: deps[0]]) for source in sources}
    assert {"requirements.txt", "constraints.txt"} <= copied_before


def test_project_lands_where_winback_and_airflow_look(instructions, compose):
    destinations = {tuple(sources): destination for sources, destination in copy_pairs(instructions)}
    assert destinations[("dags/",)].rstrip("/") == "/opt/airflow/dags"
    assert destinations[("dbt_project/",)].rstrip("/") == "/opt/airflow/dbt_project"
    env = env_instructions(instructions)
    assert env["WINBACK_PROJECT_DIR"] == "/opt/airflow"
    common = resolved_env(compose["x-airflow-common"])
    assert common["WINBACK_PROJECT_DIR"] == env["WINBACK_PROJECT_DIR"]
    assert "AIRFLOW__CORE__DAGS_FOLDER" not in common  # the image's default, /opt/airflow/dags


def test_the_dbt_manifest_is_built_in_the_image_with_dummy_profile_values(instructions):
    env = env_instructions(instructions)
    assert env["DBT_PROFILES_DIR"] == "/opt/airflow/dbt_project"
    parse = [args for keyword, args in instructions if keyword == "RUN" and "dbt parse" in args]
    assert len(parse) == 1, "the Dockerfile must run `dbt parse` once"
    dummies = set(re.findall(r"\b(DBT_[A-Z]+)=", parse[0]))
    assert {"DBT_HOST", "DBT_PORT", "DBT_USER", "DBT_PASSWORD", "DBT_DBNAME"} <= dummies
    profiles = ROOT / "dbt_project" / "profiles.yml"
    if profiles.exists():  # every env var the profile needs without a default is provided
        required = set(re.findall(r"env_var\(\s*['\"](\w+)['\"]\s*\)", profiles.read_text()))
        assert required <= dummies, f"dbt parse would fail: {sorted(required - dummies)} not set"
    assert not dummies & set(env), "dummy DBT_* values must not persist into the image's ENV"
    assert "target/manifest.json" in parse[0]
    manifest_copy = [destination for sources, destination in copy_pairs(instructions) if "dbt_project/" in sources]
    assert instructions.index(("RUN", parse[0])) > max(
        index for index, (keyword, args) in enumerate(instructions) if keyword == "COPY" and "dbt_project/" in args)
    assert manifest_copy == ["/opt/airflow/dbt_project/"]


def test_telemetry_is_off_in_the_image(instructions):
    env = env_instructions(instructions)
    for key, value in TELEMETRY_OFF.items():
        assert env.get(key) == value, f"Dockerfile ENV {key} must be {value!r}, is {env.get(key)!r}"


# ----------------------------------------------------------------------------- Celery pins
def test_celery_executor_is_installable_from_the_pins():
    """The image and `make airflow EXECUTOR=celery` install the same pins: the Celery provider,
    a celery below 5.7 (5.7.0 crashes the scheduler and worker: `cannot import name 'retry'
    from 'celery.backends.database'`), and the Redis client kombu's redis transport needs."""
    requirements, constraints = pins(ROOT / "requirements.txt"), pins(ROOT / "constraints.txt")
    for name in ("apache-airflow-providers-celery", "celery"):
        assert name in requirements, f"{name} is not pinned in requirements.txt"
        assert requirements[name] == constraints.get(name), f"{name}: requirements and constraints differ"
    celery = tuple(int(part) for part in constraints["celery"].split(".")[:2])
    assert celery < (5, 7), f"celery {constraints['celery']} (5.7 crashes the scheduler and worker)"
    for name in ("kombu", "redis", "billiard", "vine", "amqp"):
        assert name in constraints, f"{name} (a dependency of celery[redis]) is not pinned in constraints.txt"


def test_every_requirement_pin_agrees_with_the_constraints():
    requirements, constraints = pins(ROOT / "requirements.txt"), pins(ROOT / "constraints.txt")
    differ = {name: (version, constraints.get(name)) for name, version in requirements.items()
              if constraints.get(name) != version}
    assert not differ, f"requirements.txt and constraints.txt disagree: {differ}"


def test_the_image_checks_the_celery_executor_imports_with_the_winback_stack(instructions):
    checks = [args for keyword, args in instructions if keyword == "RUN" and "python -c" in args]
    assert any("airflow.providers.celery.executors.celery_executor" in args and "cosmos" in args for args in checks)


def test_the_compose_broker_is_redis_and_the_result_backend_the_metadata_db(compose):
    common = resolved_env(compose["x-airflow-common"])
    assert common["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert urllib.parse.urlsplit(common["AIRFLOW__CELERY__BROKER_URL"]).scheme == "redis"
    assert common["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql")
