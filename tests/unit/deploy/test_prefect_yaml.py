"""prefect.yaml parses and every deployment's entrypoint is a real Prefect flow."""

import importlib

import yaml
from prefect import Flow

from tests.helpers import REPO


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
        # Prefect validates the deployment's parameters against the flow's parameter model
        # (a misspelt field or a bad value fails here, not at 02:00 in the worker)
        checked = flow.validate_parameters(d.get("parameters") or {})
        assert type(checked["params"]).__name__.endswith("Params"), d["name"]
        assert d["work_pool"]["name"] == "sage-process"


def test_a_bad_deployment_parameter_is_caught():
    from prefect.exceptions import ParameterTypeError

    from flows.generate import generate_dataset

    try:
        generate_dataset.validate_parameters({"params": {"seeds": 2, "atempts": 3}})
    except ParameterTypeError as exc:
        assert "atempts" in str(exc)
    else:
        raise AssertionError("a misspelt parameter was accepted")


def test_nightly_refresh_is_scheduled_by_cron_with_a_timezone():
    from prefect.client.schemas.schedules import CronSchedule

    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    (nightly,) = [d for d in spec["deployments"] if d["name"] == "nightly-refresh"]
    (sched,) = nightly["schedules"]
    cron = CronSchedule(cron=sched["cron"], timezone=sched["timezone"])  # validates both
    assert cron.cron == "0 2 * * *" and sched["active"] is True
