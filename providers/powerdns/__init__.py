"""PowerDNS Authoritative: the lab's DNS service and a real option for self-hosted zones."""
