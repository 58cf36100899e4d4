"""Product recipes: the YAML schema, loading with file:line errors, and JSON Schema export.

A recipe is checked once, at load, and becomes frozen typed objects; nothing deeper re-validates it.
This module must stay light (no torch, no mujoco): ``sorter recipe check`` is used interactively.
"""

from __future__ import annotations

import hashlib
import json
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from sorter.errors import SorterError
from sorter.geometry import CELL_SIZE, GRID_CELLS, Pose, WorkspaceGrid

Vec3 = tuple[float, float, float]
Positive = Annotated[float, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ProductSpec(_Strict):
    """What the line sorts."""

    name: str = Field(min_length=1)
    description: str = ""


class Bounds(_Strict):
    x: tuple[float, float]
    y: tuple[float, float]


class WorkspaceSpec(_Strict):
    """The square area on the table that the camera maps and the robot may act in (robot base frame)."""

    bounds: Bounds
    cell_size: Positive = CELL_SIZE
    cells: Annotated[int, Field(ge=16, le=1024)] = GRID_CELLS
    table_z: float = 0.0

    @model_validator(mode="after")
    def _square_grid(self) -> WorkspaceSpec:
        side = self.cell_size * self.cells
        for axis, (lo, hi) in (("x", self.bounds.x), ("y", self.bounds.y)):
            if abs((hi - lo) - side) > 1e-6:
                raise ValueError(
                    f"bounds.{axis} spans {hi - lo:.4f} m but cells x cell_size is {side:.4f} m; "
                    "make them equal")
        return self

    def grid(self) -> WorkspaceGrid:
        return WorkspaceGrid(self.bounds.x[0], self.bounds.y[0], self.cell_size, self.cells, self.table_z)


class CameraPoseSpec(_Strict):
    """Where the simulated camera sits and what it looks at (robot base frame, metres)."""

    position: Vec3
    look_at: Vec3

    def pose(self) -> Pose:
        return Pose.look_at(self.position, self.look_at)


class DepthFilters(_Strict):
    """RealSense post-processing, applied in this order (librealsense's documented order)."""

    spatial: bool = True
    temporal: bool = True
    hole_filling: bool = True


class CameraSpec(_Strict):
    kind: Literal["sim", "realsense"]
    serial: str | None = None
    width: Annotated[int, Field(gt=0)] = 640
    height: Annotated[int, Field(gt=0)] = 480
    fps: Annotated[int, Field(gt=0)] = 30
    pose: CameraPoseSpec | None = None
    filters: DepthFilters = DepthFilters()
    timeout: Positive = 1.0  # s to wait for a frame before retrying
    retries: Annotated[int, Field(ge=0)] = 3

    @model_validator(mode="after")
    def _sim_needs_pose(self) -> CameraSpec:
        if self.kind == "sim" and self.pose is None:
            raise ValueError("a sim camera needs 'pose' (position and look_at)")
        return self


class RobotSpec(_Strict):
    """Arm connection and motion limits; the simulated cell uses the same numbers to model motion time."""

    kind: Literal["sim", "ur"]
    host: str | None = None
    speed: Annotated[float, Field(gt=0, le=1.0)] = 0.5  # m/s tool speed for free moves
    acceleration: Annotated[float, Field(gt=0, le=5.0)] = 1.5  # m/s^2
    contact_speed: Annotated[float, Field(gt=0, le=0.25)] = 0.1  # m/s for descents and pushes
    tool_offset: tuple[float, float, float, float, float, float] = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    payload: NonNegative = 1.0  # kg, gripper included
    home: Vec3  # tool position out of the camera's view
    travel_height: Positive = 0.15  # m above the table for moves between points

    @model_validator(mode="after")
    def _ur_needs_host(self) -> RobotSpec:
        if self.kind == "ur" and not self.host:
            raise ValueError("a 'ur' robot needs 'host' (the controller's IP address)")
        return self


class GripperSpec(_Strict):
    kind: Literal["sim", "robotiq-2f85", "onrobot-rg2"]
    max_opening: Annotated[float, Field(gt=0.01, le=0.2)]  # m between the pads when open
    force: Annotated[float, Field(gt=0, le=300)] = 60.0  # N
    pad_width: Annotated[float, Field(gt=0, le=0.1)] = 0.02  # m, pad extent along the jaw line's normal
    pad_thickness: Annotated[float, Field(gt=0, le=0.05)] = 0.008  # m, pad extent along the jaw line
    finger_length: Annotated[float, Field(gt=0, le=0.2)] = 0.05  # m, how far fingers reach below the palm
    host: str | None = None  # Robotiq URCap / OnRobot compute box; defaults to the robot host
    port: Annotated[int, Field(gt=0, lt=65536)] = 63352  # Robotiq URCap socket (vendor default)


class RejectBinSpec(_Strict):
    """The bin impurities are dropped into; outside the workspace."""

    position: Vec3  # centre of the opening, robot base frame
    size: tuple[Positive, Positive] = (0.15, 0.15)
    release_height: Positive = 0.10  # m above the opening


class SaliencySpec(_Strict):
    """VOCUS2 parameters (Frintrop et al. 2015) and the region test that decides 'impurity present'."""

    center_sigma: Positive = 3.0
    surround_sigma: Positive = 13.0
    layers: Annotated[int, Field(ge=1, le=8)] = 5
    scales_per_layer: Annotated[int, Field(ge=1, le=4)] = 2
    fusion: Literal["mean", "max", "uniqueness"] = "mean"
    center_bias: bool = False
    source: Literal["heightmap", "image"] = "heightmap"
    region_threshold: Fraction = 0.75  # grow a region while S >= threshold * peak
    min_peak_ratio: Positive = 2.0  # peak must exceed this multiple of the mean saliency elsewhere
    min_region_area: Positive = 2.0e-4  # m^2; smaller regions are noise
    # a peak standing out this many times the mean saliency is an impurity whatever its feature contrast
    # (a sliver of a half-hidden impurity has a strong peak but little centre-surround contrast); None: off
    clear_peak_ratio: Positive | None = None
    # the least feature contrast (opponent-colour units) of an impurity region; None: the saliency
    # method's own floor (VOCUS2 0.048, set across the shipped products). Lower it for an impurity that
    # differs little from the product (grey stones on white caps), above what clean product reaches
    min_feature_contrast: Annotated[float, Field(gt=0, le=1)] | None = None
    max_regions: Annotated[int, Field(ge=1, le=20)] = 5


class OcclusionSpec(_Strict):
    """DBSCAN on height map points above the table; clean-scene thresholds for the largest cluster.

    Defaults measured with ``sorter eval perception`` on the shipped recipes: at height_scale 1 a heap
    splits into layers, and a 30 cm^2 area threshold misses one item lying on an impurity (15 cm^2 does
    not, and raises no false alarm on clean scenes).
    """

    eps: Positive = 0.008  # m, neighbourhood radius in (x, y, scaled height) space
    min_samples: Annotated[int, Field(ge=1)] = 12
    height_scale: Positive = 0.3
    min_point_height: Positive = 0.005  # m above the table for a cell to count as an object
    min_cluster_height: Positive = 0.04  # m; a lower cluster cannot hide an impurity
    min_cluster_area: Positive = 0.0015  # m^2; smaller cannot hide an impurity (one item lying on it can)
    # which cluster to look under: "largest" (paper 2: the largest; the batch is clean when it cannot hide
    # an impurity) or "any" (the largest of those that can: a small stack beside a wide flat layer is
    # looked under too; more hidden impurities found, more pushes per batch, see the README)
    search: Literal["largest", "any"] = "largest"


class AppearanceSpec(_Strict):
    """Taught product look (``sorter teach``); absent model means saliency alone."""

    model: str | None = None  # path relative to the recipe file
    # fuse: novelty confirms, vetoes and adds regions; guard: saliency alone decides, and the model is
    # asked only when saliency finds no target (a clearly unfamiliar area is searched, the search centred
    # on it, instead of a batch being declared clean or a heap searched anywhere)
    use: Literal["fuse", "guard"] = "fuse"
    # guard only: before a batch is declared clean, a region saliency proposed whole (peak ratio and
    # area met) but whose feature contrast fell under the floor becomes the target when it looks clearly
    # unlike the product (a grey stone in the open on pale caps); slivers and heaps stay searches
    confirm: bool = False
    weight: Fraction = 0.5  # share of the novelty score in the fused region score
    threshold: float = 0.0  # novelty score above which a region looks unlike the product

    @model_validator(mode="after")
    def _confirm_needs_guard(self) -> AppearanceSpec:
        if self.confirm and self.use != "guard":
            raise ValueError("confirm works with use: guard only (a fused model confirms regions already); "
                             "set use: guard or remove confirm")
        return self


class PerceptionSpec(_Strict):
    saliency: SaliencySpec = SaliencySpec()
    occlusion: OcclusionSpec = OcclusionSpec()
    appearance: AppearanceSpec = AppearanceSpec()


class ShoveAsideSpec(_Strict):
    """Items beside a target that the closing pads shove aside instead of squeezing (see cover_check)."""

    across: Annotated[float, Field(gt=0, le=0.05)]  # m from the jaw line to the item's centre, at least
    max_area: Annotated[float, Field(gt=0, le=0.02)]  # m^2: the part over the target's top, one item's


class PolicySpec(_Strict):
    # the learned TCDD push-grasp agent or the scripted heuristic; paper 1's amodal upgrade (OPG) is not
    # part of this release, so the schema does not offer it (a recipe naming it fails its check instead of
    # silently running another policy)
    kind: Literal["tcdd", "heuristic"]
    model: str | None = None  # safetensors path relative to the recipe file
    # learned policies grasp only where nothing off the target stands above it between the jaws (keeps
    # the jaws off an item lying on a half-hidden impurity); turn off where the product is naturally
    # taller than the impurity beside it (flat slate among coal lumps), where it only costs pushes
    cover_check: bool = True
    # where the product is round and rolls (potatoes), an item standing over the target's top between the
    # jaws is tolerated when it is a single item (the part of it over that top no larger than max_area)
    # whose centre lies at least `across` from the jaw line: the closing pads strike it off its centre and
    # shove it aside. Off (null) by default: measured to pay on potatoes only (on toy-blocks it changed
    # nothing; on mushroom caps it saved pushes but cost missed grasps on one of two seed sets)
    shove_aside: ShoveAsideSpec | None = None
    # m of slack around each open finger pad: learned policies prefer grasps whose pads land clear even
    # grown by this much (others only when none has it). Where an item's flank may reach beyond the
    # outline the camera sees from above (irregular lumps), a pad planned just beside it stops on it on
    # the way down; one 2 mm cell is enough for coal lumps
    pad_margin: Annotated[float, Field(ge=0, le=0.01)] = 0.0
    # m^2 of a visible target below which learned policies do not grasp it but push first (for at most
    # SLIVER_PATIENCE pushes in a row): a sliver of a half-uncovered impurity mostly still has an item
    # lying on it, and the jaws close on that item (it goes to the reject bin with the impurity) or on
    # nothing. 0 (the default) grasps any target; keep it well under the smallest area the salient mask
    # gives a whole impurity, and set it where it was measured to pay
    grasp_min_area: Annotated[float, Field(ge=0, le=0.01)] = 0.0
    # how learned policies push while searching a heap that may hide an impurity: at the table, as paper
    # 2 does, or stripping the heap's top layer (fingertips 2 cm below the highest point along the
    # stroke), where items lying on a flat impurity ride along with it under a push at the table (slate
    # under coal lumps). A push at a taught model's sighting strips either way
    search_push: Literal["table", "strip"] = "table"

    @model_validator(mode="after")
    def _learned_needs_model(self) -> PolicySpec:
        if self.kind == "tcdd" and not self.model:
            raise ValueError(f"policy kind '{self.kind}' needs 'model' (a .safetensors file)")
        return self


class NextBatchSpec(_Strict):
    """What starts the next batch once one is declared clean."""

    signal: Literal["feeder", "operator", "digital-input", "timer"] = "feeder"
    input: Annotated[int, Field(ge=0, le=17)] = 0  # controller digital input for 'digital-input'
    seconds: Positive = 5.0  # wait for 'timer'


class LoopSpec(_Strict):
    max_consecutive_failures: Annotated[int, Field(ge=1)] = 3  # same spot failing this often: push or move on
    max_actions_per_batch: Annotated[int, Field(ge=1)] = 30  # then the batch ends with an alarm
    clean_confirmations: Annotated[int, Field(ge=1)] = 1  # clean verdicts in a row that end a batch
    next_batch: NextBatchSpec = NextBatchSpec()


class ColorSpec(_Strict):
    mean: tuple[int, int, int] = Field(description="RGB 0-255")
    spread: NonNegative = 10.0  # std of per-object colour around the mean, per channel
    texture: NonNegative = 8.0  # std of per-pixel texture noise on the object's surface

    @model_validator(mode="after")
    def _in_range(self) -> ColorSpec:
        if any(not 0 <= c <= 255 for c in self.mean):
            raise ValueError("colour mean channels must be within 0..255")
        return self


class SizeRange(_Strict):
    """Bounding-box extents in metres (x, y, z); each object draws uniformly between min and max."""

    min: tuple[Positive, Positive, Positive]
    max: tuple[Positive, Positive, Positive]

    @model_validator(mode="after")
    def _ordered(self) -> SizeRange:
        if any(lo > hi for lo, hi in zip(self.min, self.max, strict=True)):
            raise ValueError("every size.min must be <= size.max")
        return self


class ObjectSpec(_Strict):
    """One kind of object in the simulated cell."""

    name: str = Field(min_length=1)
    shape: Literal["box", "cylinder", "ellipsoid", "capsule", "mesh"]
    size: SizeRange
    color: ColorSpec
    mass: tuple[Positive, Positive] = (0.02, 0.05)  # kg range
    friction: Positive = 0.8
    # m: rolling resistance torque over normal force (MuJoCo condim 6). Lumpy produce stops rolling
    # where smooth shapes rock on for seconds; 0 leaves rolling free (hard blocks, angular lumps).
    rolling_friction: Annotated[float, Field(ge=0, le=0.01)] = 0.0
    # How a "mesh" kind breaks: "angular" lumps with a few large facets (stones, clods); "blocky" pieces,
    # a block with chipped corners (coal, which splits along its cleat into cuboid pieces).
    lump: Literal["angular", "blocky"] = "angular"
    weight: Positive = 1.0  # relative frequency among its group

    @model_validator(mode="after")
    def _lump_needs_mesh(self) -> ObjectSpec:
        if "lump" in self.model_fields_set and self.shape != "mesh":
            raise ValueError(f"'lump' applies to shape 'mesh' only; '{self.name}' is a {self.shape}")
        return self


class Counts(_Strict):
    items: Annotated[int, Field(ge=0, le=60)]
    impurities: Annotated[int, Field(ge=0, le=10)]


def _default_scenarios() -> dict[str, Counts]:
    return {
        "random": Counts(items=8, impurities=2),
        "challenging": Counts(items=8, impurities=1),
        "invisible": Counts(items=16, impurities=1),
        "clean": Counts(items=10, impurities=0),
        "15": Counts(items=14, impurities=1),
        "30": Counts(items=29, impurities=1),
        "30-hard": Counts(items=29, impurities=1),
    }


class FeederSpec(_Strict):
    """Batches dropped onto the simulated workspace during continuous runs."""

    items: tuple[Annotated[int, Field(ge=0)], Annotated[int, Field(ge=0)]] = (6, 12)
    impurities: tuple[Annotated[int, Field(ge=0)], Annotated[int, Field(ge=0)]] = (0, 3)
    drop_height: Positive = 0.12  # m above the table


class CameraNoiseSpec(_Strict):
    depth_std_at_1m: NonNegative = 0.001  # m; grows with distance squared (D435 datasheet behaviour)
    edge_dropout: Fraction = 0.5  # probability of losing a pixel at a depth edge
    light_direction: Vec3 = (0.3, -0.2, -1.0)


class SimSpec(_Strict):
    items: list[ObjectSpec] = Field(min_length=1)
    impurities: list[ObjectSpec] = Field(min_length=1)
    scenarios: dict[str, Counts] = Field(default_factory=_default_scenarios)
    feeder: FeederSpec = FeederSpec()
    camera_noise: CameraNoiseSpec = CameraNoiseSpec()
    table_color: tuple[int, int, int] = (70, 72, 78)


class Recipe(_Strict):
    """A whole product recipe. ``path`` and ``sha256`` identify the file it came from."""

    model_config = ConfigDict(frozen=True, extra="forbid", title="sorter recipe")

    product: ProductSpec
    workspace: WorkspaceSpec
    camera: CameraSpec
    calibration: str | None = None  # hand-eye calibration file, relative to the recipe file
    robot: RobotSpec
    gripper: GripperSpec
    reject_bin: RejectBinSpec
    perception: PerceptionSpec = PerceptionSpec()
    policy: PolicySpec
    loop: LoopSpec = LoopSpec()
    sim: SimSpec

    _path: Path | None = PrivateAttr(default=None)
    _sha256: str = PrivateAttr(default="")

    @property
    def path(self) -> Path | None:
        return self._path

    @property
    def sha256(self) -> str:
        return self._sha256

    @property
    def is_simulated(self) -> bool:
        return self.camera.kind == "sim" and self.robot.kind == "sim"

    def resolve(self, relative: str) -> Path:
        """A path named in the recipe, resolved against the recipe file's folder."""
        p = Path(relative).expanduser()
        if p.is_absolute() or self._path is None:
            return p
        return self._path.parent / p


@dataclass(frozen=True)
class RecipeIssue:
    """One problem in a recipe file, located by line and field."""

    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class RecipeError(SorterError):
    """A recipe could not be loaded; ``issues`` lists every problem found."""

    def __init__(self, issues: list[RecipeIssue]):
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


def load_recipe(path: str | Path) -> Recipe:
    """Load and validate a recipe file; raises RecipeError naming file, line, field and expectation."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError([RecipeIssue(str(path), None, "", f"cannot read the file ({exc})")]) from None
    return parse_recipe(text, str(path), path=path)


def parse_recipe(text: str, filename: str = "<recipe>", path: Path | None = None) -> Recipe:
    """Validate recipe YAML text; errors are reported against ``filename``.

    ``path`` is the file the text belongs to (saved or not), so relative paths in it resolve there.
    """
    root, data = _parse_yaml(text, filename)
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as exc:
        raise RecipeError([_issue_from(err, root, filename) for err in exc.errors()]) from None
    recipe._sha256 = hashlib.sha256(text.encode("utf-8")).hexdigest()
    recipe._path = Path(path).resolve() if path is not None else None
    return recipe


def recipe_json_schema() -> str:
    """JSON Schema of the recipe format, for editor autocompletion."""
    schema = Recipe.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return json.dumps(schema, indent=2)


def _parse_yaml(text: str, filename: str) -> tuple[yaml.Node | None, object]:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        msg = " ".join(str(p) for p in (exc.context, exc.problem) if p) or "invalid YAML"
        raise RecipeError([RecipeIssue(filename, line, "", f"YAML syntax error: {msg}")]) from None
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        msg = f"character {exc.character!r} is not allowed in YAML; remove it"
        raise RecipeError([RecipeIssue(filename, line, "", msg)]) from None
    except (yaml.YAMLError, RecursionError, ValueError) as exc:
        raise RecipeError([RecipeIssue(filename, 1, "", f"YAML error: {exc}")]) from None
    if not isinstance(data, dict):
        line = root.start_mark.line + 1 if root is not None else 1
        kind = "an empty file" if data is None else f"a {type(data).__name__}"
        raise RecipeError([RecipeIssue(filename, line, "", f"expected a mapping of sections, got {kind}")])
    dup = _find_duplicate_key(root)
    if dup is not None:
        raise RecipeError([RecipeIssue(filename, dup[0], dup[1], "key appears twice; keep one")])
    return root, data


def _find_duplicate_key(node: yaml.Node | None, path: str = "") -> tuple[int, str] | None:
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            name = str(key.value)
            field = f"{path}.{name}" if path else name
            if name in seen:
                return key.start_mark.line + 1, field
            seen.add(name)
            found = _find_duplicate_key(value, field)
            if found:
                return found
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            found = _find_duplicate_key(item, f"{path}[{i}]")
            if found:
                return found
    return None


def _issue_from(err: dict, root: yaml.Node | None, filename: str) -> RecipeIssue:
    loc = [p for p in err.get("loc", ()) if not _is_pydantic_tag(p)]
    node = _node_at(root, loc)
    line = node.start_mark.line + 1 if node is not None else None
    field = _dotted(loc)
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        hint = f"; expected one of: {', '.join(allowed)}" if allowed else ""
        message = f"unknown key '{loc[-1]}'{hint}" if loc else "unknown key"
    elif kind == "missing" and loc and isinstance(loc[-1], int):
        message = f"too few values: expected at least {loc[-1] + 1}"
    elif kind == "missing":
        message = "required field is missing"
    else:
        message = err.get("msg", "invalid value").removeprefix("Value error, ")
        if "input" in err and kind not in ("model_type", "dict_type", "value_error"):
            message += f" (got {_short(err['input'])})"
    return RecipeIssue(filename, line, field, message)


_PYDANTIC_TAG_PREFIXES = ("function-", "literal[", "tagged-union[", "nullable[", "list[", "tuple[", "dict[")
_PYDANTIC_TYPE_TAGS = ("str", "int", "float", "bool", "none")


def _is_pydantic_tag(part: object) -> bool:
    """Union branches and validator names that pydantic inserts into an error location."""
    return isinstance(part, str) and (part.startswith(_PYDANTIC_TAG_PREFIXES) or part in _PYDANTIC_TYPE_TAGS)


def _node_at(root: yaml.Node | None, loc: list) -> yaml.Node | None:
    """The deepest YAML node along ``loc``; for a key the key node, so the line is the key's line."""
    node, best = root, root
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if str(k.value) == str(part)), None)
            if match is None:
                return best
            best, node = match[0], match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = best = node.value[part]
        else:
            return best
    return best if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) else node


def _dotted(loc: list) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _allowed_keys(loc: list) -> list[str]:
    """Field names accepted at ``loc``, found by walking the schema's annotations."""
    model: object = Recipe
    for part in loc:
        model = _inner_model(model, part)
        if model is None:
            return []
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return []


def _inner_model(model: object, part: object) -> object:
    if isinstance(model, type) and issubclass(model, BaseModel):
        field = model.model_fields.get(str(part))
        return _unwrap(field.annotation) if field else None
    origin = typing.get_origin(model)
    args = typing.get_args(model)
    if origin in (list, dict) and args:
        return _unwrap(args[-1])
    return None


def _unwrap(annotation: object) -> object:
    """Strip Optional/Annotated wrappers down to a model or container type."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        models = [a for a in args if a is not type(None)]
        return _unwrap(models[0]) if len(models) == 1 else annotation
    if typing.get_origin(annotation) is Annotated:
        return _unwrap(args[0])
    return annotation
