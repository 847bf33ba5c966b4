"""Pure computations over the fleet's data (no I/O): forecasts the fleet picture publishes."""
