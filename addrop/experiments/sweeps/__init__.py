"""p x q sweeps (the paper's grid search and Figure 6): spec.py (the grid), local.py (planning and running,
locally or through ray_backend.py), cell.py (one cell in a process), results.py (reading a sweep folder)."""
