"""Every runnable stage module explains itself: ``--help`` prints its module docstring."""

from __future__ import annotations

import ast
import runpy
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def runnable_stage_modules() -> list[str]:
    """Modules of stages/ with a ``if __name__ == "__main__"`` block."""
    return sorted(p.stem for p in (ROOT / "stages").glob("*.py")
                  if '__name__ == "__main__"' in p.read_text())


def test_there_are_runnable_stages():
    assert {"compare", "evaluate", "render", "seeds"} <= set(runnable_stage_modules())


# runpy re-executes a module other tests imported already: harmless for --help
@pytest.mark.filterwarnings("ignore:.*found in sys.modules:RuntimeWarning")
@pytest.mark.parametrize("module", runnable_stage_modules())
def test_help_shows_the_module_docstring(module: str, monkeypatch, capsys):
    path = ROOT / "stages" / f"{module}.py"
    doc = ast.get_docstring(ast.parse(path.read_text()))
    assert doc, f"stages/{module}.py has no module docstring"
    monkeypatch.setattr(sys, "argv", [f"stages.{module}", "--help"])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_module(f"stages.{module}", run_name="__main__")
    out = capsys.readouterr().out
    assert exit_.value.code == 0
    assert out.startswith(f"usage: python -m stages.{module}")
    assert doc.splitlines()[0] in out, out
