from pathlib import Path

import pytest

from questdb_ingest.config import config_candidates, load_settings
from questdb_ingest.errors import ConfigError


def test_defaults_are_loopback_and_documented_ports() -> None:
    s = load_settings(env={})
    assert (s.questdb.host, s.questdb.http_port, s.questdb.pg_port) == ("127.0.0.1", 9000, 8812)
    assert (s.questdb.ilp_tcp_port, s.questdb.health_port) == (9009, 9003)
    assert s.ingest.batch_rows == 1000
    assert s.schema.ttl_days == 30


def test_file_then_env_then_overrides(tmp_path: Path) -> None:
    cfg = tmp_path / "p.toml"
    cfg.write_text("[questdb]\nhttp_port = 9100\npg_port = 8900\n[ingest]\nbatch_rows = 500\n")
    s = load_settings(cfg, env={"PUMPWATCH_QUESTDB_PG_PORT": "8901"}, overrides={"ingest": {"batch_rows": 7}})
    assert s.questdb.http_port == 9100
    assert s.questdb.pg_port == 8901
    assert s.ingest.batch_rows == 7


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[questdb]\nhttp_prot = 1\n", "questdb.http_prot"),
        ("[ingets]\nbatch_rows = 1\n", "ingets"),
        ("[ingest]\nbatch_rows = 0\n", "ingest.batch_rows"),
        ("[ingest]\nbatch_rows = 'many'\n", "ingest.batch_rows"),
        ("[ingest]\nflush_interval = -1\n", "ingest.flush_interval"),
        ("[questdb]\npg_port = 70000\n", "questdb.pg_port"),
        ("[questdb]\nheap = 'lots'\n", "questdb.heap"),
        ("[schema]\nttl_days = 0\n", "schema.ttl_days"),
        ("[schema]\ntable_prefix = 'x-y'\n", "schema.table_prefix"),
    ],
)
def test_invalid_config_names_the_key(tmp_path: Path, text: str, key: str) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_settings(cfg, env={})
    assert err.value.key == key
    assert key in str(err.value)


def test_unknown_env_key_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"ingest\.batch_size"):
        load_settings(env={"PUMPWATCH_INGEST_BATCH_SIZE": "10"})


def test_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", env={})


def test_client_conf_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QDB_CLIENT_CONF", raising=False)
    s = load_settings(env={}, overrides={"questdb": {"http_port": 9123}})
    assert s.client_conf().startswith("http::addr=127.0.0.1:9123;")
    s = load_settings(env={}, overrides={"ingest": {"client_conf": "http::addr=h:1;"}})
    assert s.client_conf() == "http::addr=h:1;"
    monkeypatch.setenv("QDB_CLIENT_CONF", "https::addr=remote:9000;")
    assert s.client_conf() == "https::addr=remote:9000;"


def test_table_prefix_applies_to_every_table() -> None:
    s = load_settings(env={}, overrides={"schema": {"table_prefix": "staging_"}})
    assert s.table("trades") == "staging_trades"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("spool_fsync", "sometimes"),
        ("workers", -1),
        ("max_queue_rows", 0),
        ("spool_after", 0),
        ("spool_max_bytes", 10),
    ],
)
def test_bad_sender_settings_name_the_key(key: str, value: object) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env={}, overrides={"sender": {key: value}})
    assert info.value.key == f"sender.{key}"


def test_state_paths_live_under_one_root_whatever_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    seen = set()
    for cwd in (tmp_path / "a", tmp_path / "b"):
        cwd.mkdir()
        monkeypatch.chdir(cwd)
        s = load_settings(env={"HOME": str(home)})
        seen.add((s.state.dir, s.sender.spool_dir, s.connectors.dead_letter_dir, s.hybrid.rollout_state))
    root = home / ".local" / "share" / "pumpwatch"
    assert seen == {(str(root), str(root / "spool"), str(root / "dead-letter/frames"), str(root / "rollout.json"))}
    s = load_settings(env={"HOME": str(home), "XDG_DATA_HOME": str(tmp_path / "data")})
    assert s.questdb.data_dir == str(tmp_path / "data" / "pumpwatch" / "questdb")
    s = load_settings(env={"PUMPWATCH_STATE_DIR": "rel", "PUMPWATCH_SENDER_SPOOL_DIR": "/abs/spool"})
    assert s.state.dir == str(tmp_path / "b" / "rel") and s.sender.spool_dir == "/abs/spool"
    assert s.hybrid.export_dir == str(tmp_path / "b" / "rel" / "listings")


def test_config_is_found_in_the_usual_places_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    xdg = tmp_path / "xdg" / "pumpwatch"
    xdg.mkdir(parents=True)
    (xdg / "pumpwatch.toml").write_text('[schema]\ntable_prefix = "user_"\n[state]\ndir = "state"\n')
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path / "home")}
    s = load_settings(env=env)
    assert s.config_file == str(xdg / "pumpwatch.toml") and s.schema.table_prefix == "user_"
    assert s.state.dir == str(xdg / "state")  # relative to the config file, not the working directory
    (tmp_path / "pumpwatch.toml").write_text('[schema]\ntable_prefix = "here_"\n')
    assert load_settings(env=env).schema.table_prefix == "here_"  # ./pumpwatch.toml comes first
    named = tmp_path / "named.toml"
    named.write_text('[schema]\ntable_prefix = "named_"\n')
    assert load_settings(env=env | {"PUMPWATCH_CONFIG": str(named)}).schema.table_prefix == "named_"
    assert [str(p) for p in config_candidates(env)] == [
        "pumpwatch.toml",
        str(xdg / "pumpwatch.toml"),
        "/etc/pumpwatch/pumpwatch.toml",
    ]


def test_a_config_file_that_is_not_utf8_names_the_file(tmp_path: Path) -> None:
    cfg = tmp_path / "latin1.toml"
    cfg.write_bytes('[schema]\ntable_prefix = "caf\xe9"\n'.encode("latin-1"))
    with pytest.raises(ConfigError, match=r"is not UTF-8 text") as info:
        load_settings(cfg, env={})
    assert info.value.key == "config"


@pytest.mark.parametrize(("key", "value"), [("max_restarts", 0), ("drain_timeout", 0), ("spool_linger", -1)])
def test_bad_new_sender_settings_name_the_key(key: str, value: object) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env={}, overrides={"sender": {key: value}})
    assert info.value.key == f"sender.{key}"


@pytest.mark.parametrize("password", ["a b", "x=y", "s3cr et=x host=evil sslmode=disable", "q'uo\\te", ""])
def test_pg_conninfo_passes_any_password_as_one_value(password: str) -> None:
    """A space ended the value and ``=`` started another option in the old f-string conninfo."""
    from psycopg.conninfo import conninfo_to_dict

    s = load_settings(env={}, overrides={"questdb": {"user": "the user", "password": password}})
    assert conninfo_to_dict(s.pg_conninfo()) == {
        "host": "127.0.0.1",
        "port": "8812",
        "user": "the user",
        "password": password,
        "dbname": "qdb",
    }
