"""Flow files of the sequence layout (docs/VIDEO.md): our .npz (flow and visibility mask) and Middlebury .flo."""

import numpy as np

FLO_MAGIC = 202021.25  # the Middlebury format's first four bytes, as a float32


def save_flow(path: str, flow: np.ndarray, mask: np.ndarray | None = None) -> None:
    """Write one frame's flow (2 x H x W, pixels) and visibility mask (H x W, 1 visible; all ones if None) as .npz."""
    flow = np.asarray(flow, np.float32)
    if mask is None:
        mask = np.ones(flow.shape[1:], np.uint8)
    np.savez_compressed(path, flow=flow, mask=np.asarray(mask, np.uint8))


def load_flow(path: str) -> tuple[np.ndarray, np.ndarray]:
    """(flow float32 2 x H x W, mask uint8 H x W) of a flow file: our .npz ('flow', optional 'mask') or Middlebury .flo
    (no mask: all ones). Raises ValueError for a file of neither form."""
    if path.endswith(".flo"):
        with open(path, "rb") as handle:
            magic = np.fromfile(handle, np.float32, 1)
            if magic.size != 1 or magic[0] != FLO_MAGIC:
                raise ValueError("not a Middlebury .flo file (bad magic number)")
            width, height = (int(v) for v in np.fromfile(handle, np.int32, 2))
            values = np.fromfile(handle, np.float32, 2 * width * height)
        if values.size != 2 * width * height:
            raise ValueError(f"truncated .flo file ({values.size} of {2 * width * height} values)")
        flow = values.reshape(height, width, 2).transpose(2, 0, 1).copy()
        return flow, np.ones((height, width), np.uint8)
    with np.load(path) as data:
        if "flow" not in data:
            raise ValueError(f"no 'flow' array (arrays: {sorted(data.files)})")
        flow = np.asarray(data["flow"], np.float32)
        if flow.ndim != 3 or flow.shape[0] != 2:
            raise ValueError(f"'flow' has shape {flow.shape}, expected 2 x H x W")
        mask = np.asarray(data["mask"], np.uint8) if "mask" in data else np.ones(flow.shape[1:], np.uint8)
        if mask.shape != flow.shape[1:]:
            raise ValueError(f"'mask' has shape {mask.shape}, expected {flow.shape[1:]}")
    return flow, mask


def save_flo(path: str, flow: np.ndarray) -> None:
    """Write a 2 x H x W flow (pixels) as a Middlebury .flo file (no mask: the format has none)."""
    flow = np.asarray(flow, np.float32)
    with open(path, "wb") as handle:
        np.array([FLO_MAGIC], np.float32).tofile(handle)
        np.array([flow.shape[2], flow.shape[1]], np.int32).tofile(handle)
        flow.transpose(1, 2, 0).tofile(handle)
