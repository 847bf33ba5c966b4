"""The embedded emulator of the Cellect cloud (Partner API) and of each site's Cellect Box.

Imports only `receiver.cellect` from the rest of cellect-monitor; the service never
imports this package (only the CLI and the tests wire the two together).
"""
