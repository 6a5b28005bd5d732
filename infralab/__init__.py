"""infralab: CLI and the glue that runs a topology (run directory, cleanup, testing helpers)."""
