"""`sewamitra soak`: the helpline under load and faults, then an audit of what must hold."""
