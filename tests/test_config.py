"""Client config: the shipped files validate; bad files fail with one message per problem."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from marketmap import cli
from marketmap.config import ConfigError, clients_dir, load_all, load_client, load_client_file, parse_client

# Shaped like a Slack bot token so the credential detector fires; built from parts so no
# token-shaped literal sits in the repository.
FAKE_SLACK_TOKEN = "-".join(["xoxb", "fake", "zq7placeholder"])

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


# --------------------------------------------------------------------------- what `marketmap validate` catches

ACCOUNT_NAMES = (
    "account_type, annual_revenue, annual_revenue_high, annual_revenue_low, city, country, crm_created, crm_id, "
    "crm_last_modified, current_arr, domain, employees, employees_high, employees_low, funding_stage, industry, "
    "intent_score, is_partner, last_funding_date, name, owner_id, prevent_override, state, tech_stack, website"
)


def validate(tmp_path: Path, capsys, text: str, name: str = "acme.yaml") -> list[str]:
    """`marketmap validate FILE` on ``text``: its stderr lines, without the file-name prefix."""
    path = tmp_path / name
    path.write_text(text)
    assert cli.main(["validate", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    return [line.removeprefix(f"{path}: ") for line in captured.err.strip().splitlines()]


def acme() -> dict:
    data = demo_data()
    data["client_id"] = "acme"
    return data


def test_vector_field_that_does_not_exist_lists_the_fields_that_do(tmp_path, capsys):
    data = acme()
    data["icp"]["rubrics"][0]["vectors"][1]["field"] = "employee_count"
    data["icp"]["rubrics"][0]["negative_indicators"][0]["field"] = "sector"
    assert validate(tmp_path, capsys, yaml.safe_dump(data)) == [
        f"icp.rubrics[0].vectors[1].field: unknown account field 'employee_count' (size); known fields: {ACCOUNT_NAMES}",
        f"icp.rubrics[0].negative_indicators[0].field: unknown account field 'sector' (government); "
        f"known fields: {ACCOUNT_NAMES}",
    ]


def test_push_source_that_does_not_exist_lists_the_sources_that_do(tmp_path, capsys):
    data = acme()
    data["push"][0]["fields"][1]["source"] = "fit"
    [line] = validate(tmp_path, capsys, yaml.safe_dump(data))
    assert line == (
        "push[0].fields[1].source: unknown source 'fit' for accounts (known: score outputs tier, fit_score, score, "
        "valuation, white_space, propensity, abm_grade, intent, max_attainable, max_attainable_tier, excluded; "
        "account fields account_key, crm_id, name, name_norm, domain, website, industry, employees, "
        "annual_revenue, country, state, city, owner_id, account_type, tech_stack, funding_stage, "
        "last_funding_date, current_arr, is_partner, prevent_override, intent_score, crm_created, "
        "crm_last_modified, employees_low, employees_high, annual_revenue_low, annual_revenue_high)"
    )


def test_unknown_column_mapping_names(tmp_path, capsys):
    data = acme()
    data["crm"]["export"]["account_columns"]["headcount"] = "NumberOfEmployees"
    [line] = validate(tmp_path, capsys, yaml.safe_dump(data))
    assert line == (
        "crm.export: account_columns maps unknown field(s) ['headcount']; the keys are Market Map field names, "
        "the values the export's columns (e.g. employees: NumberOfEmployees). Valid names: crm_id, name, website, "
        "industry, employees, annual_revenue, country, state, city, owner_id, account_type, tech_stack, "
        "funding_stage, last_funding_date, current_arr, is_partner, prevent_override, intent_score, crm_created, "
        "crm_last_modified. A column that is no built-in field is declared in custom_fields.accounts "
        "(e.g. {name: region, type: text, column: Region__c})"
    )
    data = acme()
    data["crm"]["export"]["contact_columns"]["linkedin"] = "LinkedIn_URL__c"
    [line] = validate(tmp_path, capsys, yaml.safe_dump(data))
    assert line.startswith("crm.export: contact_columns maps unknown field(s) ['linkedin']; ")
    assert line.endswith("Valid names: crm_id, account_crm_id, first_name, last_name, title, department, email, "
                         "linkedin_url, country, role_start_date, owner_id, opted_in, crm_last_modified. A column that is no "
                         "built-in field is declared in custom_fields.contacts (e.g. {name: region, type: text, "
                         "column: Region__c})")  # fmt: skip


def test_invalid_cron_expression(tmp_path, capsys):
    data = acme()
    data["schedules"] = {"monthly": "0 6 31 2 * *x", "drift": "every monday"}
    assert validate(tmp_path, capsys, yaml.safe_dump(data)) == [
        f"schedules.{key}: invalid cron expression '{value}' (five fields: minute hour day-of-month month "
        "day-of-week, e.g. '0 6 1 * *' = 06:00 on the 1st of every month; null turns the pipeline off)"
        for key, value in (("monthly", "0 6 31 2 * *x"), ("drift", "every monday"))
    ]


def test_unknown_encoding(tmp_path, capsys):
    data = acme()
    data["crm"]["export"]["encoding"] = "windows-1252x"
    assert validate(tmp_path, capsys, yaml.safe_dump(data)) == [
        "crm.export.encoding: unknown encoding 'windows-1252x' (expected a Python codec name such as utf-8-sig, "
        "cp1252 or latin-1)"
    ]


def test_duplicate_yaml_keys(tmp_path, capsys):
    text = DEMO.read_text().replace("client_id: demo", "client_id: acme")
    text = text.replace("timezone: America/New_York\n", "timezone: America/New_York\ntimezone: Europe/Berlin\n")
    line = text.splitlines().index("timezone: Europe/Berlin") + 1
    assert validate(tmp_path, capsys, text) == [
        f"invalid YAML: line {line}, column 1: duplicate key 'timezone' (first on line {line - 1}); keep one of them"
    ]
    # nested and in flow style too
    nested = "client_id: acme\nslack:\n  channels: {revops: a, revops: b}\n"
    assert validate(tmp_path, capsys, nested) == [
        "invalid YAML: line 3, column 25: duplicate key 'revops' (first on line 3); keep one of them"
    ]


def test_file_name_that_is_not_a_client_id(tmp_path, capsys):
    assert validate(tmp_path, capsys, DEMO.read_text(), name="Acme Corp.yaml") == [
        "file name 'Acme Corp.yaml' is not a valid client id (lower-case letters, digits and _, starting with "
        "a letter, 2-40 characters): rename it, e.g. acme_corp.yaml, and set client_id: acme_corp"
    ]


@pytest.mark.parametrize(
    ("where", "value", "message"),
    [
        (("crm", "api_key"), "sk-fake-zq7placeholder", "looks like a credential (api_key)"),
        (("crm", "export", "password"), "hunter2hunter2", "looks like a credential (password)"),
        (("slack", "token"), FAKE_SLACK_TOKEN, "looks like a credential (token)"),
        (("slack", "channels", "revops"), FAKE_SLACK_TOKEN, "looks like a credential (token, API key or password in a URL)"),
        (("crm", "export", "accounts"), "https://bob:s3cr3tPW@files.example.com/Account.csv", "looks like a credential (token, API key or password in a URL)"),
        (("crm", "conn_id"), "pat-na1-fa7e-zq7placeholder", "looks like a credential (token, API key or password in a URL)"),
    ],
)  # fmt: skip
def test_credentials_pasted_into_the_file_are_rejected_and_never_shown(tmp_path, capsys, where, value, message):
    data = acme()
    node = data
    for key in where[:-1]:
        node = node.setdefault(key, {})
    node[where[-1]] = value
    out = validate(tmp_path, capsys, yaml.safe_dump(data))
    assert out == [
        f"{'.'.join(where)}: {message}; store it in an Airflow connection and give its id (conn_id); "
        "the value is not shown here"
    ]
    assert value not in "\n".join(out) and value.split("-")[-1] not in "\n".join(out)


def test_credentials_in_the_shared_defaults_are_rejected_too():
    found = problems(acme(), {"crm": {"export": {"format": "password=opensesame42"}}})
    assert found == [("_defaults.yaml", "crm.export.format", "looks like a credential (token, API key or password "
                      "in a URL); store it in an Airflow connection and give its id (conn_id); the value is not "
                      "shown here")]  # fmt: skip


@pytest.mark.parametrize(
    ("drop", "key", "message"),
    [
        (("name",), "name", "required key is missing: add it, e.g. 'name: Acme Corp'"),
        (("icp", "version"), "icp.version",
         "required key is missing: add it, e.g. 'version: \"2026.01\"' (the rubric version; scores are stored per version)"),
        (("slack",), "slack", "required key is missing: add it, e.g. "
         "'slack: {channels: {revops: \"#revops\", leadership: \"#leadership\", architect: \"#gtm-arch\"}}'"),
        (("crm", "kind"), "crm.kind", "required key is missing: add it, e.g. 'kind: csv' (crm: csv, salesforce or "
         "hubspot; a vector: bands, categorical, any_of, recency, boolean)"),
    ],
)  # fmt: skip
def test_missing_key_says_what_to_write(tmp_path, capsys, drop, key, message):
    data = acme()
    node = data
    for k in drop[:-1]:
        node = node[k]
    del node[drop[-1]]
    assert f"{key}: {message}" in validate(tmp_path, capsys, yaml.safe_dump(data))


def test_duplicate_key_loader_keeps_libyaml_speed():
    from marketmap.config import _UniqueKeyLoader

    assert issubclass(_UniqueKeyLoader, yaml.CSafeLoader)


def test_user_data_that_mentions_secrets_is_not_a_credential_and_merge_keys_still_work(tmp_path):
    data = acme()
    data["icp"]["rubrics"][0]["vectors"][2]["points"]["Secret Service"] = 5
    data["icp"]["rubrics"][0]["vectors"][4]["points"]["Token"] = 4
    data["personas"]["title_aliases"] = {"tok": "token"}
    path = tmp_path / "acme.yaml"
    # an anchor + merge key with an override is not a duplicate
    merged = "client_id: acme\nbase: &b {x: 1, y: 2}\nother:\n  <<: *b\n  x: 3\n"
    path.write_text(merged)
    from marketmap.config import _read_yaml

    assert _read_yaml(path)["other"] == {"x": 3, "y": 2}
    assert parse_client(data, "clients/acme.yaml").client_id == "acme"
