"""scripts/setup_env.sh, which both README commands run first: the Python check and the stamp that makes a second run
install nothing (installing itself needs a package index, so the tests stop short of it)."""

import hashlib
import os
import subprocess
import sys

from helpers import REPO_ROOT, SUBPROCESS_ENV

SETUP = os.path.join(REPO_ROOT, 'scripts', 'setup_env.sh')


def run_setup(*args: str, **env: str) -> subprocess.CompletedProcess:
    """scripts/setup_env.sh with extra environment variables."""
    return subprocess.run(['bash', SETUP, *args], env=dict(SUBPROCESS_ENV, **env), capture_output=True, text=True, timeout=120)


def test_an_old_python_is_refused_in_one_line(tmp_path):
    fake = tmp_path / 'python3'
    fake.write_text('#!/bin/sh\ncase "$1" in --version) echo "Python 3.8.10";; *) exit 1;; esac\n')
    fake.chmod(0o755)
    result = run_setup('core', PYTHON=str(fake), VENV=str(tmp_path / 'venv'))
    assert result.returncode == 1
    assert (
        result.stderr.strip() == 'error: Python 3.8.10 is too old; the project needs Python 3.10 or newer (set PYTHON=/path/to/python3.10+)'
    )
    assert not (tmp_path / 'venv').exists()


def test_an_unknown_group_is_refused(tmp_path):
    result = run_setup('everything', VENV=str(tmp_path / 'venv'))
    assert result.returncode == 1 and 'unknown group' in result.stderr


def test_a_second_run_installs_nothing(tmp_path):
    # A venv without pip: were the script to install anything, it would fail.
    venv = tmp_path / 'venv'
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(venv)], check=True, timeout=120)
    with open(os.path.join(REPO_ROOT, 'pyproject.toml'), 'rb') as project, open(venv / 'pyvenv.cfg', 'rb') as config:
        fingerprint = hashlib.sha256(project.read() + config.read()).hexdigest()
    (venv / '.pix2pixhd-dev').write_text(fingerprint + '\n')  # the dev group includes the core
    result = run_setup('core', VENV=str(venv), PYTHON=sys.executable)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f'[setup] {venv} is up to date (core); nothing to install'
    (venv / '.pix2pixhd-dev').write_text('an older pyproject.toml\n')
    stale = run_setup('core', VENV=str(venv), PYTHON=sys.executable)
    assert stale.returncode != 0 and 'up to date' not in stale.stdout  # it tried to install, with no pip to do it
