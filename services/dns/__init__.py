"""DNS: zone files, the authoritative server, the resolver and transfers."""
