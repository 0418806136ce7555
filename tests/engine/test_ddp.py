"""Two CPU processes (torchrun --nproc_per_node 2, gloo) with ADDropTrainer on a tiny BERT: no error or hang,
masks on every rank, and on the plain epochs the same per-step losses as one process with the same global batch
(within 1e-5). The AD-DROP epochs are close but not equal: each rank draws its masks from its own generator
over its half of the batch, so the draws depend on the layout (tests/engine/ddp_worker.py runs both)."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("accelerate")
WORKER = Path(__file__).with_name("ddp_worker.py")
GLOBAL_BATCH = 4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(cmd: list[str]) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=480)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_two_process_ddp_matches_one_process_on_plain_epochs(tmp_path):
    _run([sys.executable, str(WORKER), str(tmp_path / "single"), str(GLOBAL_BATCH)])
    _run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
          "--master_port", str(_free_port()), str(WORKER), str(tmp_path / "ddp"), str(GLOBAL_BATCH)])
    single = json.loads((tmp_path / "single" / "rank0.json").read_text())
    ranks = [json.loads((tmp_path / "ddp" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert all(r["world"] == 2 for r in ranks) and single["world"] == 1
    steps = len(single["step_losses"])
    assert steps == 8 and all(len(r["step_losses"]) == steps for r in ranks)
    plain = [i for i, f in enumerate(single["flags"]) if f == 0.0]
    masked = [i for i, f in enumerate(single["flags"]) if f == 1.0]
    assert plain == [0, 1, 2, 3] and masked == [4, 5, 6, 7]
    for i in plain:  # equal halves of the global batch: the global mean loss is the mean of the ranks' losses
        mean = sum(r["step_losses"][i] for r in ranks) / 2
        assert abs(mean - single["step_losses"][i]) < 1e-5, (i, mean, single["step_losses"][i])
        assert abs(ranks[0]["logged"][i] - single["logged"][i]) < 1e-5  # the Trainer logs the ranks' mean
    for r in ranks:  # masks on every rank, in the AD-DROP epoch only
        assert r["addrop_epochs"] == [2]
        assert all(r["shares"][i] > 0 for i in masked) and all(r["shares"][i] == 0 for i in plain)
    for i in masked:  # the masked epochs stay close (the same p, q, model), without being equal
        mean = sum(r["step_losses"][i] for r in ranks) / 2
        assert abs(mean - single["step_losses"][i]) < 0.05
