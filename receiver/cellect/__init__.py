"""The Cellect Partner API contract: payload models, enums, the error catalogue,
schedule validation and URL paths. Pure code: no I/O, and no imports of the rest
of cellect-monitor, so the emulator and the client share one definition."""
