"""free_port(): a TCP port on 127.0.0.1 for a test peer to listen on.

A port from bind(("127.0.0.1", 0)) comes from the kernel's ephemeral range, the same
range every outgoing connection draws its source port from. Between the test closing
the probe socket and the peer binding the port, any connection made on the machine (by
this test, or by a parallel one: ctest -j2) may take it, and the peer then fails with
"address already in use". So the port is picked at random below the ephemeral range
(/proc/sys/net/ipv4/ip_local_port_range, 32768-60999 on Debian), where the kernel never
hands out source ports, and checked by binding it. Parallel tests pick at random among
~12,000 ports, so two rarely meet.
Same algorithm as free_port() in tests/support/support.cpp.
"""
import random
import socket

LOW = 20000


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port():
    high = _ephemeral_low() - 1
    rng = random.SystemRandom()
    if high - LOW >= 1000:
        for _ in range(500):
            port = rng.randint(LOW, high)
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    with socket.socket() as s:  # an unusual ephemeral range: let the kernel choose
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
