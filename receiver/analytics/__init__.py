"""Pure analytics of what the monitor stored: no I/O, only the vendor contract and the stdlib."""
