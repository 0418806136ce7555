from .cli import main  # imports no torch: every command checks its arguments first
from .engine.openmp import set_wait_policy

if __name__ == "__main__":  # python -m addrop; importing this module runs nothing
    set_wait_policy()  # before a command imports torch
    raise SystemExit(main())
