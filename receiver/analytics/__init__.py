"""Pure computations over the fleet's data (no I/O; only the vendor contract, the stdlib and
numpy): the plan's SoC trajectory, the energy an entry delivered."""
