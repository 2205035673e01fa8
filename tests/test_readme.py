"""The README's promises stay true: its configuration table is the code's, its commands exist."""

from __future__ import annotations

import re
from pathlib import Path

from frontend.config import SETTINGS, markdown_table

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_configuration_table_matches_the_code() -> None:
    assert markdown_table() in README, "regenerate with: ddx-stt config-table"


def test_every_setting_has_a_distinct_flag_and_variable() -> None:
    assert len({s.flag for s in SETTINGS}) == len({s.env for s in SETTINGS}) == len(SETTINGS)


def test_readme_opens_with_install_serve_then_test_commands() -> None:
    blocks = re.findall(r"```bash\n(.*?)```", README, flags=re.S)
    assert "pip install" in blocks[0] and "ddx-stt serve" in blocks[0]
    assert "pytest" in blocks[1]
