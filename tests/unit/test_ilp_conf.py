import pytest

from questdb_ingest.errors import ConfigError
from questdb_ingest.ingest.ilp import parse_conf, writer_conf


def test_writer_conf_forces_manual_flush_and_protocol_v2() -> None:
    proto, keys = parse_conf(writer_conf("http::addr=127.0.0.1:9000;"))
    assert proto == "http"
    assert keys == {
        "addr": "127.0.0.1:9000",
        "auto_flush": "off",
        "protocol_version": "2",
        "max_buf_size": str(1 << 30),
    }


def test_explicit_protocol_version_is_kept() -> None:
    _, keys = parse_conf(writer_conf("http::addr=h:1;protocol_version=1;"))
    assert keys["protocol_version"] == "1"


def test_escaped_semicolons_survive() -> None:
    _, keys = parse_conf(writer_conf("http::addr=h:1;password=a;;b;"))
    assert keys["password"] == "a;b"


@pytest.mark.parametrize(
    "conf",
    ["tcp::addr=h:9009;", "http::addr=h:1;auto_flush=on;", "addr=h:1", "http::addr"],
)
def test_unsupported_confs_are_config_errors(conf: str) -> None:
    with pytest.raises(ConfigError):
        writer_conf(conf)
