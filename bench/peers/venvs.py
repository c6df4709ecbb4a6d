"""A virtualenv per peer under ``bench/.peers-venv/<peer>``, installed from PyPI by the
benchmark itself the first time it is needed, and again whenever its requirements change.

Each peer gets its own so that no peer's dependencies (SQLAlchemy for DBOS, kombu for
Celery, the official ``inngest`` SDK) leak into Stepwise's environment or into each other.
Versions are pinned so that two runs compare the same software; the report records them.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

VENV_ROOT = Path(__file__).resolve().parents[1] / ".peers-venv"

REQUIREMENTS: dict[str, list[str]] = {
    "dbos": ["dbos==3.4.0"],
    "celery": ["celery[redis]==5.7.0"],
    "procrastinate": ["procrastinate==3.10.0", "psycopg[binary,pool]>=3.2"],
    # The official SDK serving the benchmark's functions to our server.
    "inngest": ["inngest==0.5.19", "fastapi>=0.110", "uvicorn>=0.30"],
}


def peer_python(peer: str, root: Path = VENV_ROOT) -> Path:
    """The interpreter of ``peer``'s virtualenv, created and installed first if needed."""
    venv = root / peer
    python = venv / "bin" / "python"
    stamp = venv / ".requirements"
    wanted = "\n".join(REQUIREMENTS[peer])
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    print(f"installing {peer} into {venv} ...", flush=True)
    if venv.exists():
        shutil.rmtree(venv)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "-qq", "--disable-pip-version-check"]
    subprocess.run([*pip, *REQUIREMENTS[peer]], check=True)
    stamp.write_text(wanted)
    return python
