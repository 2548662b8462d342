"""The peers' configs (tools/lab/peers.py), shared by sluice-bench and
sluice-sweep: every template filled, the same worker count for every peer."""

import os
import re

import pytest

from lab import peers


@pytest.mark.parametrize("name", peers.PEERS)
def test_peer_config_is_complete(tmp_path, name):
    argv = peers.peer_command(name, str(tmp_path), "127.0.0.1", 8123, "/srv/www", 3)
    confs = [p for p in os.listdir(tmp_path) if p.endswith(".conf")]
    assert confs == [f"{name}.conf"]
    text = (tmp_path / confs[0]).read_text()
    assert not re.findall(r"@[A-Z]+@", text)  # every placeholder filled
    assert "8123" in text and "/srv/www" in text and "127.0.0.1" in text
    assert argv[0] == peers.BINARIES[name]
    assert str(tmp_path / confs[0]) in argv
    workers = {"nginx": "worker_processes 3;", "lighttpd": "server.max-worker          = 3",
               "h2o": "num-threads: 3"}[name]
    assert workers in text


def test_one_lighttpd_process_means_max_worker_0(tmp_path):
    peers.peer_command("lighttpd", str(tmp_path), "127.0.0.1", 1, "/srv", 1)
    assert "server.max-worker          = 0" in (tmp_path / "lighttpd.conf").read_text()


def test_workers_under_a_budget():
    assert peers.workers_for(0.25, 2) == 1
    assert peers.workers_for(1.5, 2) == 2
    assert peers.workers_for(None, 2) == 2


def test_unknown_peer(tmp_path):
    with pytest.raises(peers.PeerError, match="unknown peer 'apache'"):
        peers.peer_command("apache", str(tmp_path), "127.0.0.1", 1, "/srv", 1)


def test_render_conf_replaces_adds_and_appends():
    text = "[server]\nlisten = 1\n# keep\n[writer]\nthreads = 2\n"
    out = peers.render_conf(text, {("server", "listen"): "9", ("writer", "x"): "y",
                                   ("cache", "max_entries"): "5"})
    assert out == ("[server]\nlisten = 9\n# keep\n[writer]\nthreads = 2\nx = y\n"
                   "[cache]\nmax_entries = 5\n")
