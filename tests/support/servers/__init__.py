"""Launchers for real test servers (no pytest import needed; use them from fixtures).

- :func:`tests.support.servers.kube.start_control_plane` — etcd + kube-apiserver (envtest-style).
- :func:`tests.support.servers.n9e.start_n9e` — a Nightingale center with SQLite + miniredis.

Binaries are built once by ``tools/build-envtest.sh`` / ``tools/build-n9e.sh`` and cached under
``${GEN_CACHE_DIR:-${XDG_CACHE_HOME:-~/.cache}/gen}``; see ``tools/README.md``. Import the
submodules directly (``from tests.support.servers.kube import start_control_plane``): ``kube`` needs
the ``cryptography`` package.
"""

from ._common import ServerStartError, listening_addresses

__all__ = ["ServerStartError", "listening_addresses"]
