"""The interactive editor's edit operations, as pure functions on label and instance maps (numpy arrays).

Maps are HxW integer arrays in the Cityscapes encoding the dataset reads: `label` holds class ids,
`inst` holds instance ids, where a stuff pixel holds its class id and object k of class c holds
c * 1000 + k. Every operation returns new arrays and leaves its inputs untouched, so an undo history
is a list of states. Styles are `{segment id: cluster index}`, the dict `test.py --feat_choice` reads:
a segment is an instance id (--instance_feat) or a class id (--label_feat, or a stuff segment).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

INSTANCE_BASE = 1000  # object k of class c has the instance id c * 1000 + k
MAX_INSTANCE_ID = 65535  # instance maps are 16-bit PNGs

# Names of the Cityscapes labelIds 0..33 and the license plate (34), the 35 classes of pix2pixHD's label maps.
CITYSCAPES_CLASS_NAMES = (
    'unlabeled',
    'ego vehicle',
    'rectification border',
    'out of roi',
    'static',
    'dynamic',
    'ground',
    'road',
    'sidewalk',
    'parking',
    'rail track',
    'building',
    'wall',
    'fence',
    'guard rail',
    'bridge',
    'tunnel',
    'pole',
    'polegroup',
    'traffic light',
    'traffic sign',
    'vegetation',
    'terrain',
    'sky',
    'person',
    'rider',
    'car',
    'truck',
    'bus',
    'caravan',
    'trailer',
    'train',
    'motorcycle',
    'bicycle',
    'license plate',
)
# Cityscapes classes whose objects are separate instances (labels.py hasInstances): person .. bicycle.
CITYSCAPES_OBJECT_CLASSES = frozenset(range(24, 34))


class EditError(ValueError):
    """An edit that cannot be applied: outside the map, an unknown object or class, no more free ids."""


@dataclass(frozen=True)
class EditState:
    """One step of an editing session: the maps and the style of every clustered segment."""

    label: np.ndarray
    inst: np.ndarray
    styles: Mapping[int, int] = field(default_factory=dict)


# ---------------------------------------------------------------- classes
def class_names(label_nc: int) -> list:
    """Display names of the classes: the Cityscapes names for the 35-label set, else the ids."""
    if label_nc == len(CITYSCAPES_CLASS_NAMES):
        return list(CITYSCAPES_CLASS_NAMES)
    return [f'class {class_id}' for class_id in range(label_nc)]


def instance_classes(ids: np.ndarray) -> np.ndarray:
    """Class of each instance id: the id itself below 1000, else id // 1000."""
    ids = np.asarray(ids)
    return np.where(ids < INSTANCE_BASE, ids, ids // INSTANCE_BASE)


def class_of(instance_id: int) -> int:
    """Class of one instance id (or class id): the id itself below 1000, else id // 1000."""
    return int(instance_id) if instance_id < INSTANCE_BASE else int(instance_id) // INSTANCE_BASE


def present_ids(ids: np.ndarray) -> np.ndarray:
    """The sorted distinct values of a map of non-negative ids (a counting pass, faster than sorting the map)."""
    return np.flatnonzero(np.bincount(np.asarray(ids).ravel()))


def object_classes(label_nc: int, inst: np.ndarray) -> frozenset:
    """Classes painted as separate objects: Cityscapes' object classes (35 labels) and every class with objects in `inst`."""
    ids = present_ids(inst)
    seen = {int(class_id) for class_id in ids[ids >= INSTANCE_BASE] // INSTANCE_BASE}
    return frozenset(seen | (CITYSCAPES_OBJECT_CLASSES if label_nc == len(CITYSCAPES_CLASS_NAMES) else set()))


def check_class(class_id: int, label_nc: int) -> int:
    """A class id the model knows (0..label_nc-1), else EditError."""
    if not 0 <= class_id < label_nc:
        raise EditError(f"class {class_id} is outside 0..{label_nc - 1} (the model has --label_nc {label_nc})")
    return class_id


def new_object_id(inst: np.ndarray, class_id: int) -> int:
    """A free instance id for a new object of `class_id`: one above the class's highest id in use."""
    first = class_id * INSTANCE_BASE
    in_class = inst[(inst >= first) & (inst < first + INSTANCE_BASE)]
    object_id = int(in_class.max()) + 1 if in_class.size else first
    if object_id >= first + INSTANCE_BASE or object_id > MAX_INSTANCE_ID:
        raise EditError(
            f"no free instance id for another object of class {class_id}: ids {first}..{first + INSTANCE_BASE - 1} "
            f"are in use or above the 16-bit limit {MAX_INSTANCE_ID}"
        )
    return object_id


def paint_instance(inst: np.ndarray, class_id: int, objects: frozenset, under: int | None) -> int:
    """The instance id new paint of `class_id` gets: its class id for stuff; for an object class the
    object `under` the start of the paint when it is of that class (extending it), else a new object."""
    if class_id not in objects or class_id == 0:  # class 0's objects would collide with the stuff ids
        return class_id
    if under is not None and under >= INSTANCE_BASE and under // INSTANCE_BASE == class_id:
        return under
    return new_object_id(inst, class_id)


# ---------------------------------------------------------------- painting
def _inside(shape: tuple, x: int, y: int) -> bool:
    return 0 <= y < shape[0] and 0 <= x < shape[1]


def _checked_point(shape: tuple, x: int, y: int) -> tuple:
    if not _inside(shape, x, y):
        raise EditError(f"pixel ({x}, {y}) is outside the {shape[1]}x{shape[0]} map")
    return x, y


def brush_mask(shape: tuple, points: Sequence, size: float) -> np.ndarray:
    """Pixels whose centre lies within size/2 of the polyline through `points` ((x, y) pixel coordinates)."""
    height, width = shape
    radius = size / 2
    mask = np.zeros(shape, dtype=bool)
    vertices = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if not len(vertices):
        return mask
    # One vectorised distance computation per segment of the stroke (a few dozen), over its bounding box.
    ends = vertices[1:] if len(vertices) > 1 else vertices  # a single point is a segment of length 0
    for (x0, y0), (x1, y1) in zip(vertices[: len(ends)], ends, strict=True):
        left, right = max(int(np.floor(min(x0, x1) - radius)), 0), min(int(np.ceil(max(x0, x1) + radius)), width - 1)
        top, bottom = max(int(np.floor(min(y0, y1) - radius)), 0), min(int(np.ceil(max(y0, y1) + radius)), height - 1)
        if left > right or top > bottom:
            continue
        ys, xs = np.mgrid[top : bottom + 1, left : right + 1]
        dx, dy = x1 - x0, y1 - y0
        length2 = dx * dx + dy * dy
        t = np.clip(((xs - x0) * dx + (ys - y0) * dy) / length2, 0, 1) if length2 else 0.0
        distance2 = (xs - (x0 + t * dx)) ** 2 + (ys - (y0 + t * dy)) ** 2
        mask[top : bottom + 1, left : right + 1] |= distance2 <= radius * radius
    return mask


def paint(label: np.ndarray, inst: np.ndarray, mask: np.ndarray, class_id: int, instance_id: int) -> tuple:
    """(label, inst) with the masked pixels set to `class_id` and `instance_id`."""
    new_label, new_inst = label.copy(), inst.copy()
    new_label[mask] = class_id
    new_inst[mask] = instance_id
    return new_label, new_inst


def stroke(label: np.ndarray, inst: np.ndarray, points: Sequence, size: float, class_id: int, objects: frozenset) -> tuple:
    """A brush stroke of `class_id`; an object class paints a new object unless the stroke starts on one of that class."""
    mask = brush_mask(label.shape, points, size)
    if not mask.any():
        raise EditError(f"the stroke does not touch the {label.shape[1]}x{label.shape[0]} map")
    x, y = (int(value) for value in points[0])
    under = int(inst[y, x]) if _inside(label.shape, x, y) else None
    return paint(label, inst, mask, class_id, paint_instance(inst, class_id, objects, under))


def fill(label: np.ndarray, inst: np.ndarray, x: int, y: int, class_id: int, objects: frozenset) -> tuple:
    """Flood fill: the 4-connected region of pixels with the class and instance of (x, y) becomes `class_id`."""
    x, y = _checked_point(label.shape, x, y)
    same = (label == label[y, x]) & (inst == inst[y, x])
    regions, _ = ndimage.label(same)  # the default structure is 4-connectivity
    mask = regions == regions[y, x]
    return paint(label, inst, mask, class_id, paint_instance(inst, class_id, objects, int(inst[y, x])))


def pick(label: np.ndarray, inst: np.ndarray, x: int, y: int) -> tuple:
    """Eyedropper: (class id, instance id) at pixel (x, y)."""
    x, y = _checked_point(label.shape, x, y)
    return int(label[y, x]), int(inst[y, x])


# ---------------------------------------------------------------- objects and classes
def _object_mask(inst: np.ndarray, instance_id: int) -> np.ndarray:
    mask = inst == instance_id
    if not mask.any():
        raise EditError(f"object {instance_id} is not in the map")
    return mask


def erase_object(label: np.ndarray, inst: np.ndarray, instance_id: int) -> tuple:
    """Remove an object: each of its pixels takes the class and instance of the nearest pixel outside it."""
    mask = _object_mask(inst, instance_id)
    if mask.all():
        raise EditError(f"object {instance_id} covers the whole map: there is nothing around it to fill it with; paint over it instead")
    # The feature transform gives, for every pixel, the coordinates of the nearest pixel outside the mask.
    _, (near_y, near_x) = ndimage.distance_transform_edt(mask, return_indices=True)
    new_label, new_inst = label.copy(), inst.copy()
    new_label[mask] = label[near_y[mask], near_x[mask]]
    new_inst[mask] = inst[near_y[mask], near_x[mask]]
    return new_label, new_inst


def relabel_object(label: np.ndarray, inst: np.ndarray, instance_id: int, class_id: int, objects: frozenset) -> tuple:
    """Give one object another class: it becomes a new object of `class_id`, or stuff of that class."""
    mask = _object_mask(inst, instance_id)
    return paint(label, inst, mask, class_id, paint_instance(inst, class_id, objects, None))


def relabel_class(label: np.ndarray, inst: np.ndarray, source: int, target: int) -> tuple:
    """Every pixel of class `source` becomes `target` (the paper's trees -> buildings edit).

    As `test.py --relabel`: stuff ids become `target` and object SRC*1000+k becomes TARGET*1000+k, so
    objects stay separate; when such ids are already taken, the moved objects get the next free ids.
    """
    if source == target:
        return label.copy(), inst.copy()
    new_label = np.where(label == source, target, label).astype(label.dtype)
    moved = instance_classes(inst) == source
    moved_objects = moved & (inst >= INSTANCE_BASE)
    new_inst = np.where(moved & (inst < INSTANCE_BASE), target, inst).astype(inst.dtype)
    if not moved_objects.any():
        return new_label, new_inst
    old_ids, position = np.unique(inst[moved_objects], return_inverse=True)
    if target == 0:  # class 0 has no object ids (they would be stuff ids): its objects become stuff
        new_ids = np.zeros_like(old_ids)
    else:
        first = target * INSTANCE_BASE
        new_ids = first + old_ids % INSTANCE_BASE
        taken = inst[(inst >= first) & (inst < first + INSTANCE_BASE)]
        if np.isin(new_ids, taken).any():
            new_ids = int(taken.max()) + 1 + np.arange(len(old_ids))
        if new_ids.max() >= first + INSTANCE_BASE or new_ids.max() > MAX_INSTANCE_ID:
            raise EditError(f"class {target} has no free instance ids for the {len(old_ids)} objects of class {source}")
    new_inst[moved_objects] = new_ids[position.reshape(-1)]
    return new_label, new_inst


# ---------------------------------------------------------------- styles
def style_segments(label: np.ndarray, inst: np.ndarray, by_label: bool) -> np.ndarray:
    """The ids E's features are pooled over: classes with --label_feat, instances with --instance_feat."""
    return present_ids(label if by_label else inst)


def reconcile_styles(
    styles: Mapping[int, int],
    segments: np.ndarray,
    cluster_counts: Mapping[int, int],
    rng: np.random.Generator,
    preset: Mapping[int, int] | None = None,
) -> dict:
    """Styles after an edit: segments still present keep theirs, gone ones are dropped, and every new
    segment of a clustered class gets a preset choice (instance id, else class id, as --feat_choice) or a random cluster."""
    preset = preset or {}
    result = {}
    for segment in (int(value) for value in segments):  # one entry per object, a few hundred at most
        class_id = class_of(segment)
        count = cluster_counts.get(class_id, 0)
        if not count:
            continue
        if segment in styles:
            result[segment] = styles[segment]
        elif segment in preset:
            result[segment] = preset[segment]
        elif class_id in preset:
            result[segment] = preset[class_id]
        else:
            result[segment] = int(rng.integers(count))
    return result


def choose_style(styles: Mapping[int, int], segment: int, index: int, cluster_counts: Mapping[int, int]) -> dict:
    """Styles with one segment's cluster set to `index`."""
    if segment not in styles:
        raise EditError(f"segment {segment} has no styles: it is not in the map, or class {class_of(segment)} has no clusters")
    count = cluster_counts[class_of(segment)]
    if not 0 <= index < count:
        raise EditError(f"style {index} does not exist: class {class_of(segment)} has styles 0..{count - 1}")
    return {**styles, segment: index}


def choose_class_style(styles: Mapping[int, int], class_id: int, index: int, cluster_counts: Mapping[int, int]) -> dict:
    """Styles with every segment of `class_id` set to cluster `index`."""
    count = cluster_counts.get(class_id, 0)
    if not 0 <= index < count:
        what = f"it has styles 0..{count - 1}" if count else "it has no clusters"
        raise EditError(f"style {index} does not exist for class {class_id}: {what}")
    return {segment: (index if class_of(segment) == class_id else chosen) for segment, chosen in styles.items()}


def shuffle_styles(styles: Mapping[int, int], cluster_counts: Mapping[int, int], rng: np.random.Generator) -> dict:
    """Every segment gets another random cluster of its class (a different one wherever the class has several)."""
    result = {}
    for segment, chosen in styles.items():
        count = cluster_counts[class_of(segment)]
        result[segment] = (chosen + 1 + int(rng.integers(count - 1))) % count if count > 1 else chosen
    return result


def feat_choice_json(styles: Mapping[int, int]) -> str:
    """The styles as the JSON file `test.py --feat_choice` reads: {"26001": 3, ...}."""
    return json.dumps({str(segment): int(index) for segment, index in sorted(styles.items())}, indent=1)


# ---------------------------------------------------------------- undo / redo
class History:
    """The states of an editing session: push after each edit, undo and redo walk back and forth.

    At most `limit` steps back, and at most `max_bytes` of maps in all (unchanged maps are shared
    between states and counted once): beyond either, the oldest states are let go.
    """

    def __init__(self, initial: EditState, limit: int = 50, max_bytes: int | None = None) -> None:
        self.limit = limit
        self.max_bytes = max_bytes
        self._states = [initial]
        self._index = 0

    @property
    def current(self) -> EditState:
        """The state shown now."""
        return self._states[self._index]

    @property
    def can_undo(self) -> bool:
        """True when there is an earlier state."""
        return self._index > 0

    @property
    def can_redo(self) -> bool:
        """True when an undone state can be restored."""
        return self._index < len(self._states) - 1

    @property
    def undo_steps(self) -> int:
        """How many undos the history holds from the current state."""
        return self._index

    @property
    def nbytes(self) -> int:
        """Bytes of the distinct label and instance arrays of all states."""
        return sum({id(array): array.nbytes for state in self._states for array in (state.label, state.inst)}.values())

    def push(self, state: EditState) -> int:
        """Make `state` current; it drops the undone states and the oldest beyond `limit` steps or `max_bytes`.
        Returns how many old states went for `max_bytes`."""
        self._states = self._states[: self._index + 1] + [state]
        self._states = self._states[-(self.limit + 1) :]
        dropped = 0
        while self.max_bytes is not None and len(self._states) > 1 and self.nbytes > self.max_bytes:
            del self._states[0]
            dropped += 1
        self._index = len(self._states) - 1
        return dropped

    def undo(self) -> EditState:
        """Step back to the previous state."""
        if not self.can_undo:
            raise EditError("nothing to undo")
        self._index -= 1
        return self.current

    def redo(self) -> EditState:
        """Step forward to the state an undo left."""
        if not self.can_redo:
            raise EditError("nothing to redo")
        self._index += 1
        return self.current
