"""NIfTI read/write with nibabel: affines and headers kept, errors that name the file."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from neurotrans.errors import InputError
from neurotrans.io.atomic import atomic_path

GZIP_LEVEL = 6
# Images larger than this are refused from their header, before any voxel is read: 2**28
# voxels (1 GiB as float32) holds a 0.3 mm isotropic whole head (600 x 720 x 600); a header
# declaring 1000**3 or 100000**3 voxels (a damaged or hostile file) would otherwise exhaust
# memory before failing.
MAX_VOXELS = 2**28


@dataclass(frozen=True)
class Volume:
    """A 3D image and where it lives in space.

    Args:
        data: voxel values, shape ``(X, Y, Z)``, float32.
        affine: voxel-to-world (RAS+, mm) matrix, shape ``(4, 4)``.
        header: the NIfTI header it was read with (``None`` for a new image).
        path: the file it came from, if any.
    """

    data: np.ndarray
    affine: np.ndarray
    header: nib.Nifti1Header | None = None
    path: Path | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.data.shape)  # type: ignore[return-value]

    @property
    def voxel_size(self) -> tuple[float, float, float]:
        return tuple(float(v) for v in np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0)))  # type: ignore[return-value]

    def with_data(self, data: np.ndarray) -> Volume:
        """The same grid and header with new voxel values."""
        if data.shape[:3] != self.data.shape[:3]:
            raise ValueError(f"shape {data.shape} does not match the grid {self.data.shape}")
        return Volume(np.asarray(data, dtype=np.float32), self.affine.copy(), self.header, None)


READ_FIX = "re-export the image as .nii/.nii.gz; a truncated download must be fetched again"


def check_header(img: nib.spatialimages.SpatialImage, path: Path, max_voxels: int = MAX_VOXELS) -> None:
    """Refuse, from the header alone, an image that cannot be a usable 3D volume.

    Checked before any voxel is read: the shape (3D, or 4D with one frame; no empty axis;
    at most ``max_voxels`` voxels), the data type (real numbers: complex and RGB images
    are refused, not silently cast), the voxel-to-world affine (finite, not singular)
    and, for an uncompressed file, that the file holds the data its header declares.

    Raises:
        InputError: naming the file, what its header declares and the fix.
    """
    shape = tuple(int(d) for d in img.shape)
    if len(shape) < 3 or (len(shape) > 3 and any(d != 1 for d in shape[3:])):
        raise InputError(path, f"is {len(shape)}D with shape {shape}, a 3D volume was expected",
                         "split the series into 3D volumes (e.g. `fslsplit`) or average the frames first")
    if any(d <= 0 for d in shape):
        raise InputError(path, f"its header declares an empty image (shape {shape})", READ_FIX)
    n_voxels = int(np.prod(shape[:3], dtype=object))
    if n_voxels > max_voxels:
        raise InputError(path, f"its header declares {shape[0]}x{shape[1]}x{shape[2]} = {n_voxels:.3g} voxels, more "
                         f"than the limit of {max_voxels:.3g} (a damaged or wrong file?)",
                         "check the file; a genuine image that large must be cropped or downsampled first")
    dtype = np.dtype(img.get_data_dtype())
    if dtype.kind == "c":
        raise InputError(path, f"holds complex numbers ({dtype}); their imaginary part would be lost",
                         "save the magnitude (or the real part) as a real-valued image first")
    if dtype.kind not in "biuf":
        kind = f"{'/'.join(dtype.names)} (colour)" if dtype.names else str(dtype)
        raise InputError(path, f"holds {kind} voxels, not one real value per voxel",
                         "convert it to a single-channel float or integer image")
    affine = np.asarray(img.affine, dtype=np.float64)
    norms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    if (not np.isfinite(affine).all() or (norms < 1e-6).any()
            or abs(np.linalg.det(affine[:3, :3])) < 1e-6 * float(np.prod(norms))):
        raise InputError(path, f"has a singular voxel-to-world affine (voxel sizes {np.round(norms, 4).tolist()} mm): "
                         "its voxels have no position in space", "fix the header's sform/qform (e.g. `fslorient`) "
                         "or re-export the image from the scanner's or converter's original")
    offset = getattr(img.dataobj, "offset", None)  # where nibabel will read the voxels from
    if path.name.endswith(".nii") and isinstance(offset, int):
        needed = offset + n_voxels * dtype.itemsize
        size = path.stat().st_size
        # e.g. a header-only file: refused before reading (or mapping) anything; voxels said to start
        # inside the header itself would be the header's bytes read as an image
        if size < needed or offset < int(img.header.sizeof_hdr):
            raise InputError(path, f"is truncated or malformed: its header declares {n_voxels * dtype.itemsize} bytes "
                             f"of voxels from byte {offset}, the file holds {size} bytes", READ_FIX)


def _open_image(path: Path) -> nib.spatialimages.SpatialImage:
    if not path.exists():
        raise InputError(path, "file not found", "check the path (paths in a manifest are relative to the manifest's folder)")
    if path.is_dir():
        raise InputError(path, "is a folder, not a NIfTI file", "point to a .nii or .nii.gz file")
    try:
        return nib.load(str(path))
    except (OSError, EOFError, zlib.error, ValueError, nib.filebasedimages.ImageFileError) as err:
        raise InputError(path, f"cannot be read as NIfTI ({type(err).__name__}: {err})", READ_FIX) from None


def check_volume_file(path: str | Path, *, max_voxels: int = MAX_VOXELS) -> tuple[int, ...]:
    """Check a file as :func:`load_volume` would, from its header only (no voxel is read); returns its shape.

    Commands that read many images call it on all of them first, so that a broken file
    stops the command before any output is written.
    """
    path = Path(path)
    img = _open_image(path)
    check_header(img, path, max_voxels)
    return tuple(int(d) for d in img.shape)


def load_volume(path: str | Path, *, allow_nonfinite: bool = False, max_voxels: int = MAX_VOXELS) -> Volume:
    """Read a 3D NIfTI image as float32, keeping affine and header.

    A 4D image whose fourth axis has length 1 is squeezed; any other 4D image is an error.
    The header is checked (:func:`check_header`) before any voxel is read.

    Args:
        path: ``.nii`` or ``.nii.gz`` file.
        allow_nonfinite: keep NaN/Inf voxels instead of raising.
        max_voxels: the largest image accepted (:data:`MAX_VOXELS`).
    """
    path = Path(path)
    img = _open_image(path)
    check_header(img, path, max_voxels)
    try:
        data = np.asarray(img.dataobj, dtype=np.float32)
    except (OSError, EOFError, zlib.error, ValueError, nib.filebasedimages.ImageFileError) as err:
        raise InputError(path, f"cannot be read as NIfTI ({type(err).__name__}: {err})", READ_FIX) from None
    except MemoryError:
        raise InputError(path, f"does not fit in memory ({img.shape})", "free memory or crop the image") from None
    data = data.reshape(data.shape[:3])  # a single frame: (X, Y, Z, 1) -> (X, Y, Z)
    if not allow_nonfinite and not np.isfinite(data).all():
        n = int((~np.isfinite(data)).sum())
        raise InputError(path, f"contains {n} NaN/Inf voxels",
                         "replace them (e.g. `fslmaths in -nan out`) or mask them out before use")
    return Volume(data, np.asarray(img.affine, dtype=np.float64), img.header, path)


def save_volume(
    path: str | Path,
    data: np.ndarray,
    affine: np.ndarray,
    header: nib.Nifti1Header | None = None,
    *,
    overwrite: bool = False,
    dtype: np.dtype | type = np.float32,
) -> Path:
    """Write a 3D volume atomically (never a half-written file).

    Args:
        path: destination ``.nii.gz``.
        data: shape ``(X, Y, Z)``.
        affine: ``(4, 4)`` voxel-to-world matrix (the input's, to stay on its grid).
        header: header to copy (data type and scaling are reset to ``dtype``).
        overwrite: replace an existing file; otherwise an existing file is an error.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise InputError(path, "already exists and would be overwritten",
                         "choose another output folder or pass --overwrite")
    arr = np.asarray(data).astype(dtype, copy=False)
    hdr = header.copy() if header is not None else None
    img = nib.Nifti1Image(arr, np.asarray(affine, dtype=np.float64), hdr)
    img.set_data_dtype(arr.dtype)
    img.header.set_slope_inter(1.0, 0.0)
    img.header.set_qform(affine, code=1)
    img.header.set_sform(affine, code=1)
    space, time = img.header.get_xyzt_units()
    if space == "unknown":  # affines are in mm (nibabel's RAS+ convention): say so, as BIDS asks
        img.header.set_xyzt_units("mm", None if time == "unknown" else time)
    with atomic_path(path) as tmp:
        # one plain file object for both kinds, so that a full disk surfaces as OSError here; a fixed
        # gzip mtime makes identical data give byte-identical files; level 6 is as small as 9 on
        # masked brain maps and about twice as fast to write
        raw = img.to_bytes()
        with open(tmp, "wb") as fh:
            if str(tmp).endswith(".gz"):
                import gzip
                with gzip.GzipFile(fileobj=fh, mode="wb", mtime=0, filename="", compresslevel=GZIP_LEVEL) as gz:
                    gz.write(raw)
            else:
                fh.write(raw)
    return path


def save_like(path: str | Path, data: np.ndarray, like: Volume, *, overwrite: bool = False) -> Path:
    """Write ``data`` on the grid (affine, header) of ``like``."""
    return save_volume(path, data, like.affine, like.header, overwrite=overwrite)
