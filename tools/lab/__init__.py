"""The lab shared by tools/sluice-sweep and tools/sluice-bench:

    budget.py   servers under a CPU, memory and disk budget, each in its own
                cgroup (v2 where mounted with the controllers, v1 otherwise)
    peers.py    configs and command lines of sluice, nginx, lighttpd and h2o
    knee.py     the knee of a goodput series, found honestly
    status.py   the reader of sluice's status socket replies, a client of it
    harness.py  one sluice daemon: config, start, readiness, status, stop
                (the integration tests start sluice with it too)
"""
