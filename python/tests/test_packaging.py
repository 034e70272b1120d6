"""`pip install ./python` works offline with Debian's python3 and pip, as docs/python.md says."""
import os
import shutil
import subprocess


def test_pip_install_offline(repo, tmp_path):
    src = tmp_path / "src"  # a copy, so the build leaves nothing in the checkout
    shutil.copytree(os.path.join(repo, "python"), src, ignore=shutil.ignore_patterns("tests", "__pycache__", "build",
                                                                                     "*.egg-info", ".pytest_cache"))
    venv = tmp_path / "venv"
    # Debian's own pip, run by the environment's interpreter (--system-site-packages lets it see
    # pip, setuptools and the SDK's dependencies), installs into the environment: the same as
    # the documented `.venv/bin/pip install`, without installing pip into every test venv.
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", "--without-pip", venv], check=True)
    r = subprocess.run([venv / "bin" / "python", "-m", "pip", "install", "--no-index", "--no-build-isolation", src],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run([venv / "bin" / "python", "-c", "import ppml, ppml.audit, ppml.kms, ppml.frames; "
                        "print(ppml.__file__); ppml.LocalKey(bytes(32))"], capture_output=True, text=True, cwd=tmp_path,
                       env={"PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(str(venv))
