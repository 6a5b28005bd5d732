"""Topologies: the model, the YAML loader, the wiring plan and the Mininet builder."""

from pathlib import Path

from .loader import load, loads
from .model import Host, LinkParams, Route, Router, Service, Topology, TopologyError

HERE = Path(__file__).resolve().parent
ZONES = HERE / "zones"  # the world's zone files and root hints


def builtin(name: str) -> Path:
    """Path of a topology shipped with infralab, e.g. builtin("world")."""
    return HERE / f"{name}.yaml"


__all__ = ["ZONES", "Host", "LinkParams", "Route", "Router", "Service", "Topology",
           "TopologyError", "builtin", "load", "loads"]
