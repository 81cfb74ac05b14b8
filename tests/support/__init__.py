"""What the tests share: fixtures and helpers (no tests here).

    project     the reference platform's location and tree digests
    tree        inline file trees under tmp_path
    review      a git repository of the reference platform for gen diff
    ferry       SSH keys, a source repo with published deploy branches, a world of both sides
    agent       a real etcd + kube-apiserver, the agent's keys, a site's deploy branch
    secrets     the reference platform with fresh age keys and known test values
    servers/    launchers for the real servers (envtest, n9e), usable without pytest

Fixtures are registered for every test by ``tests/conftest.py`` (``pytest_plugins``); import
helpers from here, never fixtures.
"""
