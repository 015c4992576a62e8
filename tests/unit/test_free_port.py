"""The ports the tests, the soak and the benchmarks start their servers on."""

from __future__ import annotations

from devtools import up


def test_a_free_port_is_drawn_from_below_the_ports_outgoing_connections_are_given() -> None:
    """A port from the ephemeral range can become a new connection's own before the server binds it
    (a suite run's soak failed so: gunicorn could not bind the port it was given)."""
    lowest = up.lowest_ephemeral_port()
    drawn = [up.free_port() for _ in range(200)]

    assert all(up.PORTS_FROM <= port < lowest for port in drawn)
    assert len(set(drawn)) > 150  # drawn at random, not one port handed to every server
