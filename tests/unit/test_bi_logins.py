"""BI logins without a server: their names, passwords and URLs, and what the CLI says on an
external warehouse (the logins themselves: tests/integration/test_bi.py, test_roles.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from trebol.settings import load_settings
from trebol.warehouse import bi
from trebol.warehouse.address import dsn_parts

SOCKET_DSN = "postgresql://postgres@/trebol?host=/srv/trebol/warehouse&port=15432"


@pytest.mark.parametrize("name", ["ana_lopez", "bi2", "_x", "a" * 63])
def test_a_plain_lower_case_name_is_a_login_name(name: str) -> None:
    assert bi.check_login_name(name) == name


@pytest.mark.parametrize(("name", "why"), [
    ("Ana", "not a login name"), ("2ana", "not a login name"), ("ana-lopez", "not a login name"),
    ("a" * 64, "not a login name"), ("ana; drop role x", "not a login name"),
    ("pg_monitor", "reserved"), ("trebol_loader_login", "reserved"), ("bi_reader", "reserved"),
    ("bi_pii_reader", "reserved")])
def test_other_names_are_refused_in_one_line(name: str, why: str) -> None:
    with pytest.raises(bi.BiLoginError, match=why) as error:
        bi.check_login_name(name)
    assert "\n" not in str(error.value)


def test_passwords_are_long_random_and_url_safe() -> None:
    passwords = {bi.new_password() for _ in range(50)}
    assert len(passwords) == 50
    assert all(len(password) == 32 and password.replace("-", "").replace("_", "").isalnum()
               for password in passwords)


def test_the_url_of_the_embedded_warehouse_is_its_tcp_address() -> None:
    settings = load_settings({"TREBOL_WAREHOUSE_PORT": "25432"})
    url = bi.tcp_url(settings, SOCKET_DSN, "ana_lopez", "pw-1_x")
    assert url == "postgresql://ana_lopez:pw-1_x@127.0.0.1:25432/trebol"
    assert dsn_parts(url).password == "pw-1_x"


def test_the_url_of_an_external_warehouse_is_its_host() -> None:
    admin = "postgresql://trebol:secret@db.example:6432/warehouse"
    settings = load_settings({"TREBOL_WAREHOUSE_DSN": admin})
    assert (bi.tcp_url(settings, admin, "ana_lopez", "pw")
            == "postgresql://ana_lopez:pw@db.example:6432/warehouse")


def _trebol(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "trebol.cli", *args], capture_output=True,
                          text=True, env=env, timeout=120, check=False)


def test_url_role_bi_on_an_external_warehouse_points_to_users_add(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "TREBOL_HOME": str(tmp_path),
           "TREBOL_WAREHOUSE_DSN": "postgresql://u:s3cret@127.0.0.1:1/x"}
    result = _trebol("warehouse", "url", "--role", "bi", env=env)
    assert result.returncode == 2 and result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert "external warehouse" in line and "trebol warehouse users add NAME --role bi" in line
    assert "s3cret" not in line


def test_users_add_refuses_a_bad_name_before_touching_the_warehouse(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "TREBOL_HOME": str(tmp_path)}
    result = _trebol("warehouse", "users", "add", "Ana Lopez", "--role", "bi", env=env)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "trebol warehouse users add: 'Ana Lopez' is not a login name: use lower-case letters, "
        "digits and _ (at most 63, not starting with a digit), e.g. ana_lopez")
    assert not list(tmp_path.iterdir()), "no warehouse was started"
