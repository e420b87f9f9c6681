"""Client config: the shipped files validate; bad files fail with one message per problem."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from marketmap import cli
from marketmap.config import ConfigError, clients_dir, load_all, load_client, load_client_file, parse_client

DEMO = clients_dir() / "demo.yaml"


def demo_data() -> dict:
    return yaml.safe_load(DEMO.read_text())


def problems(data: dict, defaults: dict | None = None) -> list[tuple[str, str, str]]:
    with pytest.raises(ConfigError) as exc:
        parse_client(data, "clients/x.yaml", defaults)
    return exc.value.problems


def test_shipped_configs_validate():
    configs = load_all()
    assert "demo" in configs
    demo = configs["demo"]
    assert sum(v.weight for v in demo.icp.rubrics[0].vectors) == 100
    # layered: the firm-wide default reaches the client, the client's own value wins
    assert demo.maintenance.drift_min_deals == 30
    assert demo.owner == "revops-demo"


def test_unknown_key_names_file_and_path():
    data = demo_data()
    data["icp"]["rubrics"][0]["vectors"][1]["wieght"] = 25
    found = problems(data)
    assert (
        "clients/x.yaml",
        "icp.rubrics[0].vectors[1].wieght",
        "unknown key (not part of the client config schema)",
    ) in found


def test_weights_must_sum_to_100():
    data = demo_data()
    data["icp"]["rubrics"][0]["vectors"][0]["weight"] = 30
    data["icp"]["rubrics"][0]["vectors"][0]["points"] = {"United States": 30}
    [(f, key, msg)] = problems(data)
    assert key == "icp.rubrics[0]"
    assert "sum to 100, they sum to 110" in msg


@pytest.mark.parametrize(
    "thresholds",
    [{"T1": 50, "T2": 60, "T3": 25}, {"T1": 75, "T2": 50, "T3": 50}, {"T1": 110, "T2": 50, "T3": 25}],
)
def test_thresholds_out_of_order_or_overlapping(thresholds):
    data = demo_data()
    data["icp"]["rubrics"][0]["thresholds"] = thresholds
    [(_, key, msg)] = problems(data)
    assert key == "icp.rubrics[0].thresholds"
    assert "overlapping or out of order" in msg


def test_overlapping_bands():
    data = demo_data()
    data["icp"]["rubrics"][0]["vectors"][1]["bands"][1]["min"] = 40
    [(_, key, msg)] = problems(data)
    assert key == "icp.rubrics[0].vectors[1]"
    assert "bands overlap" in msg


def test_unknown_policy_and_picklist_missing_tier_reported_together():
    data = demo_data()
    fields = data["push"][0]["fields"]
    fields[1]["policy"] = "sometimes"
    fields[0]["picklist"] = {"T1": "Tier 1", "T2": "Tier 2"}
    found = problems(data)
    keys = {k: m for _, k, m in found}
    assert "expected 'overwrite', 'if_blank' or 'never', got 'sometimes'" in keys["push[0].fields[1].policy"]
    assert any("misses ['T3']" in m for m in keys.values())
    assert len(found) == 2


def test_credentials_only_as_connection_ids():
    data = demo_data()
    data["crm"] = {"kind": "hubspot"}
    [(_, key, msg)] = problems(data)
    assert key == "crm" and "needs conn_id" in msg
    data["crm"] = {"kind": "hubspot", "conn_id": "hubspot_demo", "password": "hunter2"}
    [(_, key, msg)] = problems(data)
    assert key == "crm.password" and msg.startswith("looks like a credential (password)")
    assert "hunter2" not in msg


def test_bad_timezone_and_missing_slack_roles():
    data = demo_data()
    data["timezone"] = "Mars/Olympus"
    data["slack"]["channels"].pop("leadership")
    found = {k: m for _, k, m in problems(data)}
    assert "unknown timezone 'Mars/Olympus'" in found["timezone"]
    assert "leadership" in found["slack.channels"]


def test_client_id_must_match_file_name(tmp_path):
    path = tmp_path / "other.yaml"
    path.write_text(DEMO.read_text())
    with pytest.raises(ConfigError) as exc:
        load_client_file(path, {})
    assert exc.value.problems == [(str(path), "client_id", "must equal the file name 'other', got 'demo'")]


def test_invalid_yaml_and_not_a_mapping(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("client_id: bad\nname: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: invalid YAML: line \d+"):
        load_client_file(bad, {})
    bad.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="expected a mapping at the top level"):
        load_client_file(bad, {})


def test_load_client_unknown_names_known_clients():
    with pytest.raises(ConfigError, match=r"no such client 'nope' \(known: .*demo"):
        load_client("nope")


def test_validate_cli(tmp_path, capsys):
    assert cli.main(["validate"]) == 0
    assert "demo.yaml: ok" in capsys.readouterr().out
    bad = tmp_path / "acme.yaml"
    data = demo_data()
    data["client_id"] = "acme"
    data["icp"]["rubrics"][0]["thresholds"] = {"T1": 40, "T2": 60, "T3": 10}
    data["colour"] = "blue"
    bad.write_text(yaml.safe_dump(data))
    assert cli.main(["validate", str(bad)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2
    assert all(line.startswith(f"{bad}: ") for line in err)


def test_schema_export(tmp_path):
    out = tmp_path / "schema.json"
    assert cli.main(["schema", "-o", str(out)]) == 0
    schema = json.loads(out.read_text())
    assert "icp" in schema["properties"] and "client_id" in schema["required"]
    assert schema["additionalProperties"] is False


def test_every_fixture_config_validates():
    fixtures = Path(__file__).parent / "fixtures" / "clients"
    assert load_all(fixtures)["sample"].crm.export.format == "salesforce"
