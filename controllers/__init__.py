"""SDN controller: os-ken app whose routing logic is pure and unit-tested."""
