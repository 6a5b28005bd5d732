"""TB-TESTS: scenario tests skip with a reason when not root, but never under CI=true."""

import pytest

from tests import conftest


class FakeItem:
    def get_closest_marker(self, name):
        return object() if name == "scenario" else None


def test_tb_tests_scenario_skips_with_reason_when_not_root(monkeypatch):
    monkeypatch.setattr(conftest.os, "geteuid", lambda: 1000)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="need root"):
        conftest.pytest_runtest_setup(FakeItem())


def test_tb_tests_scenario_fails_instead_of_skipping_under_ci(monkeypatch):
    monkeypatch.setattr(conftest.os, "geteuid", lambda: 1000)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        conftest.pytest_runtest_setup(FakeItem())


def test_tb_tests_scenario_runs_as_root(monkeypatch):
    monkeypatch.setattr(conftest.os, "geteuid", lambda: 0)
    monkeypatch.setenv("CI", "true")
    assert conftest.pytest_runtest_setup(FakeItem()) is None
