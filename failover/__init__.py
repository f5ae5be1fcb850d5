"""failover: keeps the sovereign openDesk emergency workplace alive across cloud providers.

Only this top level is public API; code inside the project imports modules, not names.
"""

__version__ = "0.1.0"
