"""scripts/recover_nemo.py on a small random model: the ``.nemo`` rebuilt from its export folder
is the exported model (every tensor, the tokenizer's segmentation), and a config that is not the
exported architecture is refused without leaving a checkpoint behind."""

from __future__ import annotations

from pathlib import Path

from tests.parity.conftest import REPO, ExportedModel, nemo_run, wait_ok

RECOVER = REPO / "scripts" / "recover_nemo.py"

# Run by the NeMo interpreter: exit 0 only if both checkpoints hold the same tensors and their
# tokenizers cut the same training text (lower case, letters, apostrophes, single spaces) into
# the same pieces.
CHECK = """
import re, sys, torch
from nemo.collections.asr.models import ASRModel
a, b = (ASRModel.restore_from(p, map_location="cpu") for p in sys.argv[1:3])
sa, sb = a.state_dict(), b.state_dict()
assert sa.keys() == sb.keys(), sorted(sa.keys() ^ sb.keys())
for k in sa:
    assert torch.equal(sa[k], sb[k]), k
text = " ".join(re.sub("[^a-z' ]+", " ", open(sys.argv[3]).read().lower()).split())
assert a.tokenizer.text_to_ids(text) == b.tokenizer.text_to_ids(text)
"""


# Run by the NeMo interpreter: write the .nemo's own model config, with encoder overrides
# (key=value, YAML values) applied.
CONFIG = """
import sys, tarfile
from omegaconf import OmegaConf
with tarfile.open(sys.argv[1]) as tar:
    member = next(m for m in tar.getmembers() if m.name.endswith("model_config.yaml"))
    cfg = OmegaConf.create(tar.extractfile(member).read().decode())
cfg.encoder = OmegaConf.merge(cfg.encoder, OmegaConf.from_dotlist(sys.argv[3:]))
OmegaConf.save(cfg, sys.argv[2])
"""


def model_config(nemo: Path, dst: Path, *encoder: str) -> Path:
    wait_ok(nemo_run("-c", CONFIG, nemo, dst, *encoder))
    return dst


def test_recovered_checkpoint_is_the_exported_model(exported: dict[str, ExportedModel], tmp_path: Path) -> None:
    model = exported["ctc"]
    out = tmp_path / "recovered.nemo"
    wait_ok(nemo_run(RECOVER, model.folder, "--config", model_config(model.nemo, tmp_path / "c.yaml"), "--out", out))
    wait_ok(nemo_run("-c", CHECK, model.nemo, out, REPO / "README.md"))


def test_another_architecture_is_refused(exported: dict[str, ExportedModel], tmp_path: Path) -> None:
    model = exported["ctc"]
    # Same tensors, other arithmetic: only the round trip through the exporter can tell.
    config = model_config(model.nemo, tmp_path / "c.yaml", "xscaling=false")
    out = tmp_path / "wrong.nemo"
    proc = nemo_run(RECOVER, model.folder, "--config", config, "--out", out)
    output, _ = proc.communicate(timeout=600)
    assert proc.returncode != 0
    assert b"exports a different graph" in output
    assert not out.exists()
