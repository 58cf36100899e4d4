"""An independent statement of the safety envelope for tests: what an executed action must satisfy.

Written from the recipe alone, not with ``SafetyEnvelope``, so a bug there cannot hide itself.
"""

from __future__ import annotations

import math

from hypothesis import strategies as st

from sorter.cell.base import Action, ActionKind
from sorter.geometry import PUSH_LENGTH


def outside_reasons(action: Action, recipe) -> list[str]:
    """Every way ``action`` leaves the recipe's envelope; empty when it is inside."""
    values = (action.x, action.y, action.z, action.angle)
    if not all(isinstance(v, float | int) and math.isfinite(v) for v in values):
        return [f"non-finite {values}"]
    ws, g = recipe.workspace, recipe.gripper
    reasons = []
    if not ws.table_z <= action.z <= ws.table_z + recipe.robot.travel_height:
        reasons.append(f"z {action.z}")
    c, s = math.cos(action.angle), math.sin(action.angle)
    if action.kind is ActionKind.GRASP:
        a, b = g.max_opening / 2 + g.pad_thickness, g.pad_width / 2
        points = [(action.x + i * a * c - j * b * s, action.y + i * a * s + j * b * c)
                  for i in (-1, 1) for j in (-1, 1)]
    else:
        r = math.hypot(g.pad_thickness, g.pad_width / 2)
        ends = [(action.x, action.y), (action.x + PUSH_LENGTH * c, action.y + PUSH_LENGTH * s)]
        points = [(ex + dx, ey + dy) for ex, ey in ends for dx, dy in ((r, 0), (-r, 0), (0, r), (0, -r))]
    (x0, x1), (y0, y1) = ws.bounds.x, ws.bounds.y
    eps = 1e-9
    for px, py in points:
        if not (x0 - eps <= px <= x1 + eps and y0 - eps <= py <= y1 + eps):
            reasons.append(f"{action.kind} reaches ({px:.4f}, {py:.4f})")
    return reasons


any_float = st.floats(allow_nan=True, allow_infinity=True, width=64)
near_workspace = st.floats(min_value=-0.3, max_value=0.8, allow_nan=False)


@st.composite
def actions(draw):
    """Any action at all, drawn mostly around the shipped recipes' workspace and tool heights."""
    kind = draw(st.sampled_from([ActionKind.GRASP, ActionKind.PUSH]))
    coord = st.one_of(near_workspace, any_float)
    z = st.one_of(st.floats(min_value=0.0, max_value=0.15), st.floats(min_value=-0.1, max_value=0.4),
                  any_float)
    return Action(kind, draw(coord), draw(coord), draw(z), draw(st.one_of(st.floats(-10, 10), any_float)))
