"""Fixtures that start the real daemon on loopback.

    sluice           one server for the whole session, default config, on the
                     shared read-only test root (do not change its files)
    sluice_factory   sluice_factory(root=None, **conf) starts a server for one
                     test: conf keys are SECTION_KEY (writer_threads=5,
                     timeouts_header="1s", cache_validity="1s") or
                     "section.key"; root is a helpers.Root or a path (default:
                     the shared root)
    test_root        the shared helpers.Root (session)
    fresh_root       a private copy of the standard root for tests that change
                     files (function)

A server object has port, url, host, root (helpers.Root: .path, .files =
{url path: (size, sha256)}), root_path, conf_path,
status_socket (path of its status socket), pid, proc, log_path, conf (the
dict written), log_text(). Every server is stopped at teardown with SIGTERM;
teardown then asserts exit status 0 within 15 s and that its log has no
AddressSanitizer, LeakSanitizer, ThreadSanitizer or UBSan "runtime error:"
report.

The daemon is $SLUICE_BUILD/sluice (default <repo>/build/sluice).
"""

import os

import pytest

import helpers


def pytest_report_header(config):
    return f"sluice binary: {helpers.SLUICE}"


@pytest.fixture(scope="session")
def sluice_binary():
    if not os.access(helpers.SLUICE, os.X_OK):
        pytest.fail(f"{helpers.SLUICE} not found or not executable: build first "
                    f"(make build) or set SLUICE_BUILD", pytrace=False)
    return helpers.SLUICE


@pytest.fixture(scope="session")
def test_root(tmp_path_factory):
    return helpers.make_root(tmp_path_factory.mktemp("root") / "www")


@pytest.fixture
def fresh_root(tmp_path):
    return helpers.make_root(tmp_path / "www")


@pytest.fixture(scope="session")
def sluice(sluice_binary, test_root, tmp_path_factory):
    server = helpers.Sluice(tmp_path_factory.mktemp("sluice"), test_root, name="session")
    server.start()
    yield server
    server.check_clean_exit()


@pytest.fixture
def sluice_factory(sluice_binary, test_root, tmp_path):
    servers = []

    def factory(root=None, name=None, **conf):
        name = name or f"sluice{len(servers)}"
        server = helpers.Sluice(tmp_path / name, root or test_root, conf=conf, name=name)
        servers.append(server)
        return server.start()

    yield factory
    errors = []
    for server in servers:
        try:
            server.check_clean_exit()
        except AssertionError as e:
            errors.append(str(e))
    assert not errors, "\n\n".join(errors)
