"""The deployment files stay true to the code they run: docker-compose.yml, the Dockerfile, .dockerignore.

Nothing is built or started (CI has no Docker engine): the files are parsed, and what they name — settings,
CLI commands, the health route, the packaged files — is checked against the code.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from fnmatch import fnmatch
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from app.cli import cli
from app.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SERVE = ["nbo", "serve", "--host", "0.0.0.0"]
TEST_SECRETS = {"POSTGRES_PASSWORD": "test-password"}


# --- reading the files ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


@cache
def dockerfile_stages() -> tuple[tuple[Instruction, ...], ...]:
    """The Dockerfile's instructions, one tuple per stage (a stage starts at each FROM)."""
    stages: list[list[Instruction]] = []
    for line in _logical_lines((ROOT / "Dockerfile").read_text()):
        keyword, _, args = line.partition(" ")
        instruction = Instruction(keyword.upper(), args.strip())
        if instruction.keyword == "FROM":
            stages.append([])
        assert stages, f"an instruction before the first FROM: {line}"
        stages[-1].append(instruction)
    return tuple(tuple(stage) for stage in stages)


def _logical_lines(text: str) -> Iterator[str]:
    """Lines with their backslash continuations joined; comments and blank lines dropped (also inside a
    continuation, as Docker does)."""
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        yield pending + line
        pending = ""
    assert not pending, "the Dockerfile ends inside a continuation"


def final_stage(keyword: str) -> list[str]:
    return [i.args for i in dockerfile_stages()[-1] if i.keyword == keyword]


def dockerfile_env() -> dict[str, str]:
    """The final stage's ENV, in the `KEY=value` form (the legacy `ENV KEY value` form is refused)."""
    env: dict[str, str] = {}
    for args in final_stage("ENV"):
        for pair in shlex.split(args):
            key, sep, value = pair.partition("=")
            assert sep, f"ENV {args}: use KEY=value"
            env[key] = value
    return env


def exec_form(args: str) -> list[str]:
    """The JSON (exec) form of CMD or HEALTHCHECK CMD: no shell between Docker and the process."""
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


def dockerfile_healthcheck() -> list[str]:
    """The HEALTHCHECK's test as Docker stores it, and as compose writes it: ["CMD", program, args...]."""
    [healthcheck] = final_stage("HEALTHCHECK")
    options, _, command = healthcheck.partition("CMD ")
    assert all(option.startswith("--") for option in options.split()), healthcheck
    return ["CMD", *exec_form(command)]


@cache
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def service(name: str) -> dict[str, Any]:
    return compose()["services"][name]


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:-default}` and `${VAR:?error}`, with `env` as the shell's environment."""

    def replace(match: re.Match[str]) -> str:
        name, operator, word = match.group(1), match.group(2), match.group(3)
        if env.get(name):
            return env[name]
        if operator == ":?":
            raise KeyError(f"{name}: {word}")
        return word if operator == ":-" else ""

    return re.sub(r"\$\{(\w+)(?:(:[-?])([^}]*))?\}", replace, value)


def environment(name: str) -> dict[str, str]:
    return {key: interpolate(str(value), TEST_SECRETS) for key, value in service(name)["environment"].items()}


def nbo_commands() -> list[list[str]]:
    """Every `nbo ...` the deployment runs: the image's CMD and each service's command (also inside sh -c)."""
    commands = [exec_form(final_stage("CMD")[0])]
    for spec in compose()["services"].values():
        command = spec.get("command")
        if command and command[:2] == ["sh", "-c"]:
            commands += [shlex.split(part) for part in command[2].split("&&")]
        elif command:
            commands.append(command)
    return [c for c in commands if c and c[0] == "nbo"]


def healthcheck_code(test: list[str]) -> str:
    assert test[:3] == ["CMD", "python", "-c"], test
    return test[3]


# --- the image ------------------------------------------------------------------------------------------------


def test_the_image_is_built_in_stages_on_python_3_11_slim():
    stages = dockerfile_stages()
    assert len(stages) >= 2
    assert all(stage[0].args.split()[0] == "python:3.11-slim" for stage in stages)


def test_the_build_stage_installs_the_project_into_a_venv_the_runtime_copies():
    build = " ".join(i.args for i in dockerfile_stages()[0] if i.keyword == "RUN")
    assert "python -m venv /opt/venv" in build
    assert "pip install ." in build
    assert final_stage("COPY") == ["--from=build /opt/venv /opt/venv"]


def test_the_runtime_has_lightgbms_openmp_library():
    assert any("--no-install-recommends libgomp1" in run for run in final_stage("RUN"))


def test_the_service_runs_as_a_fixed_non_root_uid():
    [user] = final_stage("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) > 0, "a numeric uid lets Kubernetes check runAsNonRoot"
    assert not gid or (gid.isdigit() and int(gid) > 0)


def test_the_runtime_environment_keeps_openmp_quiet_and_logs_unbuffered():
    env = dockerfile_env()
    assert env["OMP_NUM_THREADS"] == "1"
    assert env["OMP_WAIT_POLICY"] == "passive"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["PATH"].startswith("/opt/venv/bin:")


def test_the_model_registry_and_embedded_state_live_under_data():
    env = dockerfile_env()
    assert env["NBO_MODEL_DIR"] == "/data/models"
    assert all(Path(env[key]).is_absolute() for key in ("NBO_MODEL_DIR", "NBO_FEATURES_FILE"))
    assert env["NBO_DATABASE_URL"].startswith("sqlite+aiosqlite:////data/")


def test_the_image_serves_nbo_on_port_8000():
    assert final_stage("EXPOSE") == ["8000"]
    assert exec_form(final_stage("CMD")[0]) == SERVE
    assert "ENTRYPOINT" not in {i.keyword for i in dockerfile_stages()[-1]}


def test_the_image_healthcheck_calls_healthz_with_urllib():
    code = healthcheck_code(dockerfile_healthcheck())
    assert "urllib.request" in code
    assert "/healthz" in code
    compile(code, "HEALTHCHECK", "exec")


def test_the_health_route_exists():
    from app.routes import router

    assert "/healthz" in {route.path for route in router.routes}


# --- the build context --------------------------------------------------------------------------------------


def dockerignore() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip().strip("/") for line in lines if line.strip() and not line.startswith("#")]


def test_the_build_context_leaves_out_local_state_and_secrets():
    assert {".venv", "var", ".git", ".env"} <= set(dockerignore())


def test_the_build_context_keeps_what_pip_install_needs():
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = [p.rstrip("*") for p in setuptools["packages"]["find"]["include"]]
    needed = ["pyproject.toml", "README.md", *packages]
    excluded = [path for path in needed for pattern in dockerignore() if fnmatch(path, pattern)]
    assert not excluded


# --- the compose file ------------------------------------------------------------------------------------------


def test_compose_runs_the_four_services_and_an_optional_demo():
    services = compose()["services"]
    assert {"postgres", "redis", "migrate", "app"} <= set(services)
    optional = set(services) - {"postgres", "redis", "migrate", "app"}
    assert all(services[name].get("profiles") for name in optional), "extra services only behind a profile"


def test_postgres_is_16_with_a_volume_and_pg_isready():
    postgres = service("postgres")
    assert postgres["image"] == "postgres:16"
    assert "pg_isready" in postgres["healthcheck"]["test"]
    assert any(v.endswith(":/var/lib/postgresql/data") for v in postgres["volumes"])


def test_redis_is_7_with_an_append_only_file_and_a_ping_healthcheck():
    redis = service("redis")
    assert redis["image"] == "redis:7"
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert any(v.endswith(":/data") for v in redis["volumes"])


def test_migrate_upgrades_the_schema_once_postgres_is_healthy():
    migrate = service("migrate")
    assert migrate["command"] == ["nbo", "db", "upgrade"]
    assert migrate["image"] == service("app")["image"]
    assert migrate["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert migrate.get("restart", "no") == "no"


def test_the_app_starts_after_the_migration_with_redis_healthy():
    depends_on = service("app")["depends_on"]
    assert depends_on["migrate"] == {"condition": "service_completed_successfully"}
    assert depends_on["redis"] == {"condition": "service_healthy"}


def test_the_app_runs_the_images_command_on_port_8000():
    app = service("app")
    assert app.get("command", SERVE) == SERVE
    assert [port.rsplit(":", 1)[1] for port in app["ports"]] == ["8000"]


def test_the_app_healthcheck_is_the_images():
    assert service("app")["healthcheck"]["test"] == dockerfile_healthcheck()


def test_the_app_environment_is_production_on_postgres_and_redis():
    assert environment("app") == {
        "NBO_ENVIRONMENT": "production",
        "NBO_DATABASE_URL": "postgresql+asyncpg://nbo:test-password@postgres/nbo",
        "NBO_REDIS_URL": "redis://redis:6379/0",
        "NBO_WORKERS": "2",
    }


def test_the_app_environment_is_a_valid_production_settings(monkeypatch: pytest.MonkeyPatch):
    for key in [k for k in os.environ if k.upper().startswith("NBO_")]:
        monkeypatch.delenv(key)
    for key, value in environment("app").items():
        monkeypatch.setenv(key, value)
    settings = Settings(_env_file=None)
    assert settings.environment == "production"
    assert settings.workers == 2
    assert not settings.embedded


def test_every_nbo_variable_is_a_settings_field():
    names = set(dockerfile_env())
    for spec in compose()["services"].values():
        names |= set(spec.get("environment", {}))
    fields = {name.removeprefix("NBO_").lower() for name in names if name.startswith("NBO_")}
    assert fields
    assert fields <= set(Settings.model_fields), fields - set(Settings.model_fields)


def test_secrets_have_no_default_that_would_run():
    text = (ROOT / "docker-compose.yml").read_text()
    secrets = re.findall(r"\$\{(\w*(?:PASSWORD|SECRET|TOKEN)\w*)([^}]*)\}", text)
    assert secrets
    assert all(rest.startswith(":?") for _, rest in secrets), secrets
    with pytest.raises(KeyError, match="POSTGRES_PASSWORD"):
        interpolate(service("postgres")["environment"]["POSTGRES_PASSWORD"], {})


def test_named_volumes_are_declared():
    declared = set(compose()["volumes"])
    for spec in compose()["services"].values():
        for volume in spec.get("volumes", []):
            source = volume.split(":", 1)[0]
            assert source.startswith(("/", ".")) or source in declared, volume


def test_the_model_registry_is_on_the_shared_volume():
    model_dir = dockerfile_env()["NBO_MODEL_DIR"]
    mounts = [v.split(":")[1] for v in service("app")["volumes"]]
    assert any(model_dir.startswith(mount) for mount in mounts)


# --- the commands ---------------------------------------------------------------------------------------------


def test_the_console_script_is_the_typer_app():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["nbo"] == "app.cli:main"


@pytest.mark.parametrize("args", [["serve", "--help"], ["db", "upgrade", "--help"]])
def test_the_cli_has_the_commands_the_deployment_runs(args: list[str]):
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output


def test_every_nbo_command_in_the_deployment_parses():
    commands = nbo_commands()
    assert SERVE in commands and ["nbo", "db", "upgrade"] in commands
    for command in commands:
        # --help is handled after the options are parsed: an unknown command or option still fails.
        result = CliRunner().invoke(cli, [*command[1:], "--help"])
        assert result.exit_code == 0, (command, result.output)
