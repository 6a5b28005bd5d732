"""UDP hole punching (NAT-HOLEPUNCH): a rendezvous server and a peer, small on purpose."""
