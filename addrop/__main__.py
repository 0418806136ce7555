from .cli import main  # imports no torch: every command checks its arguments first
from .engine.allocator import tune_for_training
from .engine.openmp import set_wait_policy

if __name__ == "__main__":  # python -m addrop; importing this module runs nothing
    set_wait_policy()  # before a command imports torch
    tune_for_training()  # glibc's thresholds as the benchmark measures steps with (engine/allocator.py)
    raise SystemExit(main())
