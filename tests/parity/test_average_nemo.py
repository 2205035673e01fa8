"""scripts/average_nemo.py on small random models: the mean of two checkpoints of one network,
and a clear refusal for two different networks."""

from __future__ import annotations

from pathlib import Path

from tests.parity.conftest import MODEL_OPTIONS, REFERENCE, REPO, ExportedModel, nemo_run, wait_ok

AVERAGE = REPO / "scripts" / "average_nemo.py"

# Run by the NeMo interpreter: exit 0 only if OUT's float tensors are the weighted mean of A's
# and B's (integer buffers: A's), and OUT is neither of them.
CHECK = """
import sys, torch
from nemo.collections.asr.models import ASRModel
a, b, out = (ASRModel.restore_from(p, map_location="cpu").state_dict() for p in sys.argv[1:4])
wa, wb = float(sys.argv[4]), float(sys.argv[5])
for k, v in out.items():
    want = (wa * a[k].double() + wb * b[k].double()) / (wa + wb) if v.is_floating_point() else a[k]
    assert torch.allclose(v.double(), want, rtol=1e-6, atol=1e-7), k
assert any(not torch.equal(out[k], a[k]) for k in out if out[k].is_floating_point())
"""


def check(a: Path, b: Path, out: Path, weights: tuple[float, float]) -> None:
    wait_ok(nemo_run("-c", CHECK, a, b, out, *map(str, weights)))


def test_average_is_the_mean_and_other_networks_are_refused(
    exported: dict[str, ExportedModel], tmp_path: Path
) -> None:
    first = exported["ctc"].nemo
    tokenizer = first.parent / "tokenizer"
    second = tmp_path / "ctc_seed5.nemo"
    wait_ok(nemo_run(REFERENCE, "build", second, *MODEL_OPTIONS, "--seed", "5", "--tokenizer", tokenizer))

    mean = tmp_path / "mean.nemo"
    wait_ok(nemo_run(AVERAGE, first, second, "--out", mean))
    check(first, second, mean, (1.0, 1.0))

    weighted = tmp_path / "weighted.nemo"
    wait_ok(nemo_run(AVERAGE, first, second, "--out", weighted, "--weights", "3,1"))
    check(first, second, weighted, (3.0, 1.0))

    refused = nemo_run(AVERAGE, first, exported["hybrid"].nemo, "--out", tmp_path / "no.nemo")
    out, _ = refused.communicate(timeout=600)
    assert refused.returncode != 0
    assert b"not EncDecCTCModelBPE" in out or b"not the same network" in out
    assert not (tmp_path / "no.nemo").exists()
