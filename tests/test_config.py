"""orgsync.config: YAML → typed sections, with interpolation, secret files and clear errors."""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
import yaml

from orgsync import config as config_module
from orgsync.bench.groups_scale import define
from orgsync.config import (
    Config,
    LedgerConfig,
    LoggingConfig,
    SyncConfig,
    _load_yaml,
    _StrictLoader,
    config_from_dict,
    load_config,
)
from orgsync.demo import demo_config
from orgsync.errors import EXIT_CONFIG, ConfigError
from orgsync.feishu import FeishuSettings

HERE = Path(__file__).parent / "config"
REPO = Path(__file__).parent.parent


def base(**sections: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"version": 1, "feishu": {"app_id": "cli_a", "app_secret": "s3cr3t!"},
                            "source": {"type": "csv"}}
    for name, value in sections.items():
        if isinstance(value, dict) and isinstance(data.get(name), dict):
            data[name] = {**data[name], **value}
        else:
            data[name] = value
    return data


class TestValid:
    def test_minimal_file_gets_every_default(self) -> None:
        """Only version, credentials and the source are required; the rest defaults."""
        cfg = load_config(HERE / "minimal.yaml", env={})
        assert cfg.path == HERE / "minimal.yaml"
        assert cfg.feishu == FeishuSettings(app_id="cli_test", app_secret="test-secret-value")
        assert cfg.sync == SyncConfig()
        assert cfg.logging == LoggingConfig()
        assert cfg.ledger == LedgerConfig(url=f"sqlite:///{HERE.resolve()}/orgsync.db")
        assert cfg.source.type == "csv"
        assert dict(cfg.source.options) == {"departments": "hr/departments.csv",
                                            "employees": "hr/employees.csv"}
        assert cfg.source.base_dir == HERE.resolve()
        assert cfg.source.file == str(HERE / "minimal.yaml")

    def test_every_key_is_read(self) -> None:
        """Non-default values of every section reach the dataclasses, normalised."""
        cfg = config_from_dict(base(
            feishu={"base_url": "http://127.0.0.1:8790/", "timeout": "2.5", "max_retries": 0,
                    "rate_limits": "false", "rate_scale": 0.5},
            ledger={"url": "postgresql+psycopg://u@db/orgsync"},
            sync={"leaver_action": "FREEZE", "concurrency": 4},
            logging={"format": "json", "level": "DEBUG", "mask_pii": False},
        ))
        assert cfg.feishu == FeishuSettings(base_url="http://127.0.0.1:8790", app_id="cli_a",
                                            app_secret="s3cr3t!", timeout=2.5, max_retries=0,
                                            rate_limits=False, rate_scale=0.5)
        assert cfg.ledger.url == "postgresql+psycopg://u@db/orgsync"
        assert cfg.sync == SyncConfig(leaver_action="freeze", concurrency=4)
        assert cfg.logging == LoggingConfig(format="json", level="debug", mask_pii=False)
        assert cfg.path is None

    @pytest.mark.parametrize("name", ["example.yaml", "demo.yaml"])
    def test_shipped_configs_load(self, name: str) -> None:
        """config/example.yaml and config/demo.yaml are valid."""
        env = {"FEISHU_APP_ID": "cli_x", "FEISHU_APP_SECRET": "x"}
        cfg = load_config(REPO / "config" / name, env=env)
        assert cfg.source.type == "csv"

    def test_demo_config_defaults(self) -> None:
        """The demo talks to the local sandbox with demo credentials unless overridden."""
        cfg = load_config(REPO / "config" / "demo.yaml", env={})
        assert cfg.feishu.base_url == "http://127.0.0.1:8790"
        assert (cfg.feishu.app_id, cfg.feishu.app_secret) == ("cli_demo", "demo-secret")
        assert cfg.ledger.url == f"sqlite:///{(REPO / 'config' / 'demo.db').resolve()}"
        cfg = load_config(REPO / "config" / "demo.yaml", env={"ORGSYNC_APP_ID": "cli_real"})
        assert cfg.feishu.app_id == "cli_real"

    def test_demo_config_does_what_the_demo_does(self, tmp_path: Path) -> None:
        """config/demo.yaml syncs with the demo's rules: leavers frozen, then deleted after
        the same grace period, with the same handover."""
        shipped = load_config(REPO / "config" / "demo.yaml", env={})
        demo = demo_config("http://127.0.0.1:8790", "cli_demo", "s", tmp_path, "sqlite://")
        assert (shipped.sync, shipped.lifecycle) == (demo.sync, demo.lifecycle)
        assert shipped.sync.leaver_action == "freeze"


class TestInterpolation:
    def test_variables_defaults_and_escapes(self) -> None:
        """${VAR}, ${VAR:-default} (also when empty) and $${ work in any string, nested too."""
        cfg = config_from_dict(base(
            feishu={"app_id": "${APP}", "app_secret": "pre-${SECRET:-fallback}-post"},
            source={"type": "csv", "employees": "${DIR}/e.csv", "note": "$${NOT_A_VAR}",
                    "nested": {"list": ["${APP}"]}},
            logging={"level": "${LEVEL:-warning}"},
        ), env={"APP": "cli_env", "DIR": "/data", "SECRET": ""})
        assert cfg.feishu.app_id == "cli_env"
        assert cfg.feishu.app_secret == "pre-fallback-post"
        assert cfg.source.options["employees"] == "/data/e.csv"
        assert cfg.source.options["note"] == "${NOT_A_VAR}"
        assert cfg.source.options["nested"] == {"list": ["cli_env"]}
        assert cfg.logging.level == "warning"

    def test_os_environ_is_the_default(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without env=, variables come from the process environment."""
        monkeypatch.setenv("ORGSYNC_TEST_APP_ID", "cli_from_env")
        cfg = config_from_dict(base(feishu={"app_id": "${ORGSYNC_TEST_APP_ID}"}))
        assert cfg.feishu.app_id == "cli_from_env"


class TestSecrets:
    def test_secret_file_is_read_and_stripped(self, tmp_path: Path) -> None:
        """app_secret_file (relative to the config dir) replaces app_secret."""
        (tmp_path / "secret.txt").write_text("  from-file\n", encoding="utf-8")
        data = base()
        data["feishu"] = {"app_id": "a", "app_secret_file": "secret.txt"}
        cfg = config_from_dict(data, base_dir=tmp_path)
        assert cfg.feishu.app_secret == "from-file"

    def test_secret_never_shown(self) -> None:
        """The app secret is absent from repr/str of the config and of its errors."""
        cfg = config_from_dict(base())
        assert "s3cr3t!" not in repr(cfg)
        assert "s3cr3t!" not in str(cfg.feishu)
        with pytest.raises(ConfigError) as err:
            config_from_dict(base(feishu={"app_secret": ["s3cr3t!"]}))
        assert "s3cr3t!" not in str(err.value)

    def test_secret_looking_source_options_are_masked(self) -> None:
        """Source options named like secrets are masked in the SourceConfig repr."""
        cfg = config_from_dict(base(source={"type": "ldap", "bind_password": "hunter2"}))
        assert "hunter2" not in repr(cfg.source)
        assert cfg.source.options["bind_password"] == "hunter2"


class TestPaths:
    @pytest.mark.parametrize(("url", "expected"), [
        ("sqlite:///state/o.db", "sqlite:///{base}/state/o.db"),
        ("sqlite:////abs/o.db", "sqlite:////abs/o.db"),
        ("sqlite://", "sqlite://"),
        ("sqlite:///:memory:", "sqlite:///:memory:"),
        ("sqlite+pysqlite:///o.db?timeout=5", "sqlite+pysqlite:///{base}/o.db?timeout=5"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
    ])
    def test_sqlite_paths_resolve_against_the_config_dir(self, tmp_path: Path, url: str,
                                                         expected: str) -> None:
        """Relative SQLite paths are anchored at the config's directory; others are untouched."""
        cfg = config_from_dict(base(ledger={"url": url}), base_dir=tmp_path)
        assert cfg.ledger.url == expected.format(base=tmp_path.resolve())


# file -> (dotted key or None, a fragment of the message)
FAILURES: dict[str, tuple[str | None, str]] = {
    "missing-version.yaml": ("version", "is missing (add 'version: 1' at the top)"),
    "bad-version.yaml": ("version", "unsupported config version 2"),
    "unknown-top-key.yaml": ("legder", "unknown key (did you mean 'ledger'?)"),
    "unknown-feishu-key.yaml": ("feishu.time_out", "unknown key (did you mean 'timeout'?)"),
    "missing-app-id.yaml": ("feishu.app_id", "is required"),
    "missing-env.yaml": ("feishu.app_secret",
                         "environment variable 'ORGSYNC_TEST_SURELY_UNSET' is not set"),
    "secret-and-file.yaml": ("feishu.app_secret", "both 'app_secret' and 'app_secret_file'"),
    "missing-secret-file.yaml": ("feishu.app_secret_file", "cannot read secret file"),
    "bad-leaver-action.yaml": ("sync.leaver_action", "did you mean 'freeze'?"),
    "bad-timeout.yaml": ("feishu.timeout", "0.0 is out of range (use a value > 0)"),
    "not-a-number.yaml": ("feishu.max_retries", "expected an integer, got 'lots'"),
    "bad-concurrency.yaml": ("sync.concurrency", "0 is out of range (use a value >= 1"),
    "section-not-mapping.yaml": ("sync", "expected a mapping, got 'fast'"),
    "invalid-yaml.yaml": (None, "invalid YAML at line 4"),
    "duplicate-key.yaml": (None, "duplicate key 'app_id'"),
    "missing-source.yaml": ("source", "section is missing"),
    "missing-source-type.yaml": ("source.type", "is required"),
    "bad-base-url.yaml": ("feishu.base_url", "'open.feishu.cn' is not an http(s) URL"),
    "bad-logging-format.yaml": ("logging.format", "did you mean 'json'?"),
    "malformed-reference.yaml": ("feishu.app_id", "malformed variable reference"),
    "bad-ledger-url.yaml": ("ledger.url", "'orgsync.db' is not a database URL"),
    "empty.yaml": (None, "the config is empty"),
    "bad-rate-limits.yaml": ("feishu.rate_limits", "expected true or false, got 'sometimes'"),
    "alias-bomb.yaml": (None, "a YAML alias at line 6, column 8: orgsync does not expand aliases "
                              "(*a) (write the value out where the alias stands)"),
}


class TestFailures:
    @pytest.mark.parametrize("name", sorted(FAILURES))
    def test_failure_mode(self, name: str) -> None:
        """Each tests/config/<failure>.yaml is a ConfigError naming file, key and problem."""
        key, fragment = FAILURES[name]
        path = HERE / name
        with pytest.raises(ConfigError) as err:
            load_config(path, env={})
        assert err.value.file == str(path)
        assert err.value.key == key
        assert fragment in str(err.value)
        assert str(err.value).startswith(str(path))
        assert err.value.exit_code == EXIT_CONFIG

    def test_every_fixture_is_covered(self) -> None:
        """Every YAML in tests/config is either a failure mode above or a valid example."""
        assert {p.name for p in HERE.glob("*.yaml")} == {*FAILURES, "minimal.yaml"}

    def test_an_alias_bomb_is_refused_before_it_expands(self) -> None:
        """9 levels of 9 aliases (10⁸ values expanded) fail at the first alias: fast, small."""
        tracemalloc.start()
        started = time.perf_counter()
        try:
            with pytest.raises(ConfigError, match="does not expand aliases"):
                load_config(HERE / "alias-bomb.yaml", env={})
            elapsed = time.perf_counter() - started
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert elapsed < 1.0
        assert peak < 2_000_000  # bytes: the nine aliased lists are never built

    def test_anchors_without_aliases_are_plain_values(self, tmp_path: Path) -> None:
        """An anchor alone expands nothing, so it is read as the value it marks."""
        path = tmp_path / "c.yaml"
        path.write_text("version: 1\nfeishu: &f {app_id: a, app_secret: s}\n"
                        "source: {type: csv}\n", encoding="utf-8")
        assert load_config(path, env={}).feishu.app_id == "a"

    def test_missing_file(self, tmp_path: Path) -> None:
        """A config path that does not exist is a ConfigError with a remedy."""
        with pytest.raises(ConfigError, match=r"config file not found.*config/example\.yaml"):
            load_config(tmp_path / "nope.yaml")

    def test_dict_errors_name_the_given_file(self) -> None:
        """config_from_dict errors use the file name it was given."""
        with pytest.raises(ConfigError, match=r"^inline: sync\.concurrency: "):
            config_from_dict(base(sync={"concurrency": 1000}), file="inline")


def test_config_is_frozen() -> None:
    """Configs are immutable values."""
    cfg: Config = config_from_dict(base())
    with pytest.raises(AttributeError):
        cfg.sync = SyncConfig()  # type: ignore[misc]


class TestDepartmentKeys:
    def test_rename_overlap_and_leavers_department(self) -> None:
        """sync.rename_min_overlap (0.8 unless set) and lifecycle.leavers_department (a
        department id, unset by default) are read; bad values name the key and the remedy."""
        cfg = config_from_dict(base())
        assert (cfg.sync.rename_min_overlap, cfg.lifecycle.leavers_department) == (0.8, None)
        cfg = config_from_dict(base(sync={"rename_min_overlap": "0.9"},
                                    lifecycle={"leavers_department": "D900"}))
        assert (cfg.sync.rename_min_overlap, cfg.lifecycle.leavers_department) == (0.9, "D900")
        with pytest.raises(ConfigError) as err:
            config_from_dict(base(sync={"rename_min_overlap": 0.3}))
        assert (err.value.key, err.value.remedy) == ("sync.rename_min_overlap",
                                                     "use a value >= 0.5 and <= 1.0")
        with pytest.raises(ConfigError) as err:
            config_from_dict(base(lifecycle={"leavers_department": 900}))
        assert err.value.key == "lifecycle.leavers_department"
        assert "expected a department id, got" in str(err.value)


class TestYamlReader:
    """The config's YAML is read by libyaml first, with the pure-Python reader's results."""

    @staticmethod
    def _strict(text: str) -> Any:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass

    def test_every_example_reads_as_the_strict_reader_reads_it(self) -> None:
        """The same values, or the same error (line, column, alias refused)."""
        texts = [p.read_text(encoding="utf-8") for p in
                 (*sorted(HERE.glob("*.yaml")), REPO / "config" / "example.yaml")]
        texts += ["a: &x 1\nb: *x\n", "a: [&x {k: v}, *x]\n", "{a: 1, a: 2}\n", "", "- x\n"]
        def outcome(read: Any, text: str) -> tuple[Any, Any]:
            try:
                return "read", read(text)
            except yaml.YAMLError as exc:
                return type(exc), str(exc)
        for text in texts:
            assert outcome(_load_yaml, text) == outcome(self._strict, text)

    def test_a_200_group_section_is_read_by_libyaml(self) -> None:
        """groups_scale's 200 groups (1,000 lines) come out as the strict reader gives them,
        read by libyaml (how much faster is the benchmarks' business, not a test's)."""
        text = yaml.safe_dump({"groups": {"define": define([f"D{n:04d}" for n in range(200)])}},
                              allow_unicode=True)
        assert config_module._FastLoader is not None  # the install's PyYAML has libyaml
        assert _load_yaml(text) == self._strict(text)
