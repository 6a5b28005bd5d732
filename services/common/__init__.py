"""Plumbing every service process shares: control socket, endpoints, signals, ICMP echo."""
