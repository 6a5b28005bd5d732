"""DHCP (DHCP-*): wire format, lease pool, server, client state machine — pure logic with
thin socket processes around it, like the DNS and GSLB services."""
