"""`swirl-eval`'s commands, one module per group; each module's `register(add)` declares its arguments."""
