"""prefect.yaml parses and every deployment's entrypoint is a real Prefect flow."""

import importlib
from pathlib import Path

import yaml
from prefect import Flow

REPO = Path(__file__).resolve().parents[1]


def test_every_deployment_points_at_a_flow_with_known_parameters():
    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    deployments = spec["deployments"]
    assert {d["name"] for d in deployments} >= {
        "index-demo",
        "generate",
        "demo",
        "validate",
        "evaluate",
        "nightly-refresh",
    }
    for d in deployments:
        path, name = d["entrypoint"].split(":")
        assert (REPO / path).exists(), path
        flow = getattr(importlib.import_module(path[:-3].replace("/", ".")), name)
        assert isinstance(flow, Flow), d["entrypoint"]
        unknown = set(d.get("parameters") or {}) - set(flow.parameters.properties)
        assert not unknown, f"{d['name']}: unknown parameters {unknown}"
        assert d["work_pool"]["name"] == "sage-process"


def test_nightly_refresh_is_scheduled_by_cron_with_a_timezone():
    from prefect.client.schemas.schedules import CronSchedule

    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    (nightly,) = [d for d in spec["deployments"] if d["name"] == "nightly-refresh"]
    (sched,) = nightly["schedules"]
    cron = CronSchedule(cron=sched["cron"], timezone=sched["timezone"])  # validates both
    assert cron.cron == "0 2 * * *" and sched["active"] is True
