import subprocess
import sys

import pytest

from offroad_core.atomic import atomic_path, atomic_write_text
from offroad_training import cli


def test_atomic_write_replaces_whole_file(tmp_path):
    target = tmp_path / "sub" / "artifact.json"
    atomic_write_text(target, "first")
    atomic_write_text(target, "second")
    assert target.read_text() == "second"
    assert [p.name for p in target.parent.iterdir()] == ["artifact.json"]


def test_failed_write_leaves_previous_content_and_no_temp_file(tmp_path):
    target = tmp_path / "model.onnx"
    atomic_write_text(target, "good")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]


def test_cli_without_command_prints_help_and_exit_code_2(capsys):
    assert cli.main([]) == 2
    assert "usage: offroad" in capsys.readouterr().out


def test_offroad_console_script_runs_without_ros_environment():
    env = {"PATH": "/usr/bin:/bin"}
    code = ("import sys, offroad_training.cli as c; "
            "assert not any(m.startswith(('rclpy', 'rosidl')) for m in sys.modules); "
            "print('ok')")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "ok"
