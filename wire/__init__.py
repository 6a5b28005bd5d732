"""Wire formats: frames and the DHCP codec. Imports nothing of the project (the bottom layer)."""
