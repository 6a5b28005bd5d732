"""Services run on emulated hosts (DNS, GSLB, DHCP land here with their issues)."""
