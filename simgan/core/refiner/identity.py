"""Whether a selected refiner changed anything: a refiner that became the identity must be
reported, never pass silently as "refined" (kept free of torch: compare reads it too)."""

from __future__ import annotations

from typing import Any

IDENTITY_DRIFT = 0.5
"""Mean |R(x) - x| (gray levels, held-out synthetic images) below which a refiner counts as
having made no change: under one quantisation step of a uint8 image on average."""


def identity_reason(selection: dict[str, Any]) -> str | None:
    """Why the selected refiner is (in effect) the identity, or None if it changed the images.

    Two ways to end there silently, both seen on real eye crops: selection kept adversarial
    step 0 (every trained checkpoint failed a guard, or none scored better), or training
    moved R so little that refined images equal synthetic ones."""
    if selection.get("selected_step") == 0 and selection.get("last_step", 0) > 0:
        failed = [c["step"] for c in selection.get("curve", []) if c["step"] > 0
                  and not c.get("eligible", 1.0)]
        why = (f"; {len(failed)} later checkpoint(s) failed the structure/drift guards"
               if failed else "")
        return ("the selected checkpoint is the untrained refiner (adversarial step 0)"
                + why)
    change = selection.get("output_drift", selection.get("drift", IDENTITY_DRIFT))
    if change < IDENTITY_DRIFT:
        return (f"the selected refiner changes images by {change:.2f} gray levels "
                f"on average (< {IDENTITY_DRIFT:g}): refined ~= synthetic")
    return None


def capture_only_note(selection: dict[str, Any]) -> str | None:
    """When the label terms judge the scene before R's capture stages (a depth sensor, or a
    camera or codec with ``label_terms: scene``), ``drift`` is the change R makes before them
    (zero without conv layers) and ``output_drift`` what comes out: when only the capture
    stages changed the images, say so (the scene stayed synthetic), else None."""
    if "output_drift" not in selection or identity_reason(selection) is not None:
        return None
    if selection.get("drift", IDENTITY_DRIFT) >= IDENTITY_DRIFT:
        return None
    return (f"the image before the capture stages differs from the synthetic one by "
            f"{selection['drift']:.2f} gray levels on average (< {IDENTITY_DRIFT:g}); every "
            f"change of the refined images ({selection['output_drift']:.2f} gray levels) is "
            f"made by R's capture stages (its learned depth sensor, camera or codec)")
