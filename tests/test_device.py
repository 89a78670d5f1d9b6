"""The device rule (contract/device.py): one result type for every command, its fallback note
said once, the same way, and a command that needs the CUDA answer twice asking once."""
from __future__ import annotations

import logging

import pytest

from mmsa_cli.contract import device as rule
from mmsa_cli.errors import ConfigError, DeviceUnavailableError


@pytest.fixture
def driver(monkeypatch):
    monkeypatch.setattr(rule, "nvidia_driver_present", lambda: True)


def test_auto_falls_back_with_one_note_on_stderr(driver, caplog):
    with caplog.at_level(logging.WARNING):
        chosen = rule.resolve_device("auto", lambda: "no CUDA GPU is visible")
    assert chosen == rule.Device("cpu", "device auto: running on the CPU (no CUDA GPU is visible)")
    assert [r.getMessage() for r in caplog.records] == [chosen.note]


def test_cuda_where_it_cannot_run_is_exit_7_and_cpu_asks_nothing(driver):
    with pytest.raises(DeviceUnavailableError, match="--device cuda: CUDA cannot be used here"):
        rule.resolve_device("cuda", lambda: "no NVIDIA driver")
    asked = []
    assert rule.resolve_device("cpu", lambda: asked.append(1)) == rule.Device("cpu")
    assert rule.resolve_device("auto", lambda: None) == rule.Device("cuda")
    assert not asked
    with pytest.raises(ConfigError, match="'gpu' is not one of auto, cpu, cuda"):
        rule.resolve_device("gpu", lambda: None)


def test_once_makes_one_decision(driver):
    calls = []
    check = rule.once(lambda: calls.append(1) or "no GPU")
    assert rule.resolve_device("auto", check).name == "cpu"
    assert check() == "no GPU" and calls == [1]
