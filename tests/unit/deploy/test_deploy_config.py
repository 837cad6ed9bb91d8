"""deploy/compose.yaml and deploy/Dockerfile.worker hang together (Docker is not run here).

Parsed with a YAML parser: the services exist with their ports, the worker's environment
points at the other services by service name and port, every depends_on and named volume
is declared, and the worker image copies files that exist and runs the pool prefect.yaml
deploys to.
"""

from __future__ import annotations

import fnmatch
import re
import shlex
import tomllib
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from tests.helpers import REPO

DEPLOY = REPO / "deploy"
_VAR = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def _defaults(value):
    """Compose interpolation with every variable at its default (unset)."""
    if isinstance(value, str):
        return _VAR.sub(lambda m: m.group(2) or "", value)
    if isinstance(value, list):
        return [_defaults(v) for v in value]
    if isinstance(value, dict):
        return {k: _defaults(v) for k, v in value.items()}
    return value


@pytest.fixture(scope="module")
def compose() -> dict:
    return _defaults(yaml.safe_load((DEPLOY / "compose.yaml").read_text()))


def _ports(service: dict) -> set[int]:
    """Container ports a service publishes ("host:container")."""
    return {int(str(p).split(":")[-1].split("/")[0]) for p in service.get("ports", [])}


def _command(service: dict) -> str:
    cmd = service.get("command", "")
    return " ".join(cmd) if isinstance(cmd, list) else cmd


def test_the_four_services_and_what_they_publish(compose):
    services = compose["services"]
    assert {"qdrant", "prefect", "worker", "vllm"} <= set(services)
    qdrant, prefect, vllm = services["qdrant"], services["prefect"], services["vllm"]
    assert qdrant["image"].startswith("qdrant/qdrant:") and 6333 in _ports(qdrant)
    assert any(v.endswith(":/qdrant/storage") for v in qdrant["volumes"])
    assert prefect["image"] == "prefecthq/prefect:3-python3.11" and 4200 in _ports(prefect)
    assert "prefect server start --host 0.0.0.0" in _command(prefect)
    assert prefect["environment"]["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    assert vllm["image"].startswith("vllm/vllm-openai") and 8000 in _ports(vllm)
    gpu = vllm["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["driver"] == "nvidia" and "gpu" in gpu["capabilities"]


def test_worker_environment_points_at_the_services_by_name(compose):
    services = compose["services"]
    env = services["worker"]["environment"]
    targets = {
        "SAGE_QDRANT": ("qdrant", 6333, ""),
        "PREFECT_API_URL": ("prefect", 4200, "/api"),
        "SAGE_API_BASE": ("vllm", 8000, "/v1"),
    }
    for key, (name, port, path) in targets.items():
        url = urlparse(env[key])
        assert url.scheme == "http" and url.hostname == name and url.port == port, env[key]
        assert url.path == path and port in _ports(services[name]), env[key]
        assert name in services["worker"]["depends_on"], name
    cmd = services["vllm"]["command"]
    model = cmd[cmd.index("--model") + 1]
    assert env["SAGE_LM"] == f"hosted_vllm/{model}"  # LiteLLM asks vLLM for this model
    assert env["SAGE_TASK_RUNNER"] == "thread"


def test_depends_on_and_volumes_are_declared(compose):
    services, volumes = compose["services"], compose.get("volumes") or {}
    for name, svc in services.items():
        deps = svc.get("depends_on") or {}
        for dep in deps:
            assert dep in services, f"{name} depends on an unknown service {dep}"
        for mount in svc.get("volumes", []):
            source = mount.split(":")[0]
            if not source.startswith((".", "/", "~")):  # a named volume
                assert source in volumes, f"{name}: volume {source} is not declared"


def test_every_service_that_runs_sage_shares_the_run_directory(compose):
    services = compose["services"]
    runs = compose["services"]["worker"]["environment"]["SAGE_RUNS_DIR"]
    for name in ("worker", "dask-worker"):
        mounts = services[name]["volumes"]
        assert f"sage_runs:{runs}" in mounts, name  # Dask workers append checkpoints there
    assert services["dask-worker"]["environment"] == services["worker"]["environment"]
    assert "tcp://dask-scheduler:8786" in _command(services["dask-worker"])
    assert 8786 in _ports(services["dask-scheduler"])


def test_worker_deploys_prefect_yaml_to_the_pool_its_deployments_name(compose):
    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    pools = {d["work_pool"]["name"] for d in spec["deployments"]}
    assert pools == {"sage-process"}
    cmd = _command(compose["services"]["worker"])
    assert "prefect work-pool create sage-process --type process" in cmd
    assert "prefect deploy --all --no-prompt" in cmd
    assert "prefect worker start --pool sage-process" in cmd


def _dockerfile_lines(path: Path) -> list[str]:
    """Instructions with continuation lines joined and comments dropped."""
    out, cur = [], ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        cur += line[:-1] + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            out.append(cur)
            cur = ""
    return out


def test_dockerfile_copies_files_that_exist_and_installs_a_real_extra(compose):
    build = compose["services"]["worker"]["build"]
    context = (DEPLOY / build["context"]).resolve()
    dockerfile = context / build["dockerfile"]
    assert context == REPO and dockerfile.exists()
    lines = _dockerfile_lines(dockerfile)
    ignore = (dockerfile.parent / f"{dockerfile.name}.dockerignore").read_text().splitlines()
    ignore = [x for x in ignore if x and not x.startswith("#")]
    copies = [shlex.split(line)[1:-1] for line in lines if line.startswith("COPY ")]
    assert copies
    for sources in copies:
        for src in sources:
            assert (context / src).exists(), f"COPY {src}: not in the repository"
            assert _kept(src, ignore), f"COPY {src}: excluded by the .dockerignore"
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    runs = " ".join(line for line in lines if line.startswith("RUN "))
    for extra in re.findall(r"'\.\[([\w,]+)\]'", runs):
        assert set(extra.split(",")) <= set(extras), extra
    assert "prefect-dask" in " ".join(extras["dask"])
    assert "sage models pull" in runs
    workdir = next(line.split()[1] for line in lines if line.startswith("WORKDIR "))
    env = compose["services"]["worker"]["environment"]
    assert env["SAGE_RUNS_DIR"].startswith(workdir) and env["SAGE_DATA_DIR"].startswith(workdir)
    assert any(line.startswith("CMD ") and "sage-process" in line for line in lines)


def _kept(path: str, patterns: list[str]) -> bool:
    """Whether a .dockerignore (last matching pattern wins; ! re-includes) keeps path."""
    kept = True
    for pat in patterns:
        neg = pat.startswith("!")
        pat = pat.lstrip("!").rstrip("/")
        if fnmatch.fnmatch(path.rstrip("/"), pat):
            kept = neg
    return kept
