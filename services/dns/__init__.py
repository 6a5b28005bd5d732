"""DNS: zone files now; authoritative server, resolver and transfers with issue 4."""
