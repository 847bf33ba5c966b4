"""cellect-monitor: a monitoring companion for sites run through the Cellect Partner API."""

__version__ = "0.1.0"
