"""orgsync.preview and `orgsync preview-source`: the snapshot a config produces, without Feishu."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from orgsync.cli import app
from orgsync.errors import ConfigError
from orgsync.preview import load_source_config, preview_source, render_text, to_json

CONFIG = """\
version: 1
feishu:
  app_id: ${FEISHU_APP_ID}
  app_secret: ${FEISHU_APP_SECRET}
source:
  type: csv
  employees: hr.csv
  encoding: auto
  department_path: 部门
logging:
  format: console
  level: warning
"""
EMPLOYEES = ("employee_id,name,en_name,email,mobile,部门,manager_id,job_title,employee_type,"
             "join_date,city,status\n"
             "E1,张三,,zs@example.com,13800138000,研发中心/平台部,,,,,,\n"
             "E2,李四,,ls@example.com,12345,研发中心,E1,,,,,\n"
             "E3,王五,,ww@example.com,13800138002,[销售]部,E9,,,,,\n")


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    """A csv config (department paths) whose Feishu credentials are unset."""
    (tmp_path / "hr.csv").write_text(EMPLOYEES, encoding="utf-8")
    path = tmp_path / "orgsync.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


def test_preview_needs_no_feishu_credentials(config_file: Path) -> None:
    """Unset FEISHU_* variables do not stop a preview; the source is read and validated."""
    data = preview_source(load_source_config(config_file, env={}))
    assert sorted(data.snapshot.employees) == ["E1", "E3"]
    assert [(i.key, i.field, i.severity) for i in data.issues] == [
        ("E2", "mobile", "error"), ("E3", "manager_key", "warning")]


def test_source_errors_are_still_config_errors(tmp_path: Path) -> None:
    """A bad source section is reported as usual, with its key."""
    path = tmp_path / "o.yaml"
    path.write_text(CONFIG.replace("type: csv", "type: cvs"), encoding="utf-8")
    with pytest.raises(ConfigError, match="unknown source type 'cvs'") as err:
        preview_source(load_source_config(path, env={}))
    assert err.value.key == "source.type"


def test_text_rendering(config_file: Path) -> None:
    """The text preview shows counts, the tree (indented), employees and every issue verbatim."""
    data = preview_source(load_source_config(config_file, env={}))
    console = Console(record=True, width=200)
    render_text(data, console)
    text = console.export_text()
    assert "3 departments, 2 employees (2 active, 0 terminated); held back: 0 departments, " \
           "1 employees" in text
    assert "[销售]部  ([销售]部)\n研发中心  (研发中心)\n  平台部  (研发中心/平台部)" in text
    assert ("error employees.csv:3: employee E2: mobile: '12345' is not a valid mobile number"
            .replace("employees.csv", "hr.csv")) in text
    assert "Validation: 1 errors (records held back), 1 warnings (field cleared)" in text


def test_cli_json(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`orgsync preview-source --format json` prints the snapshot and report as JSON."""
    monkeypatch.delenv("FEISHU_APP_ID", raising=False)
    monkeypatch.delenv("FEISHU_APP_SECRET", raising=False)
    result = CliRunner().invoke(app, ["preview-source", "-c", str(config_file), "-f", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["summary"]["employees"] == 2
    assert [d["key"] for d in doc["departments"]] == ["[销售]部", "研发中心", "研发中心/平台部"]
    assert doc["held"] == {"departments": [], "employees": ["E2"]}
    assert doc == json.loads(to_json(preview_source(load_source_config(config_file, env={}))))


def test_cli_source_failure_exit_code(config_file: Path) -> None:
    """A source that cannot be read exits 4 with the message."""
    (config_file.parent / "hr.csv").unlink()
    result = CliRunner().invoke(app, ["preview-source", "-c", str(config_file)])
    assert result.exit_code == 4
    assert "file not found (source.employees)" in result.output
