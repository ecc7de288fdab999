"""qemu-img: detect an image's format and import it into RBD with real progress."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass

from vmconsole.backends.proc import follow_progress, run
from vmconsole.config import CephSection
from vmconsole.domain.errors import BackendError, BackendTimeout, Cancelled, ValidationError

BACKEND = "qemu-img"
_PROGRESS = re.compile(rb"\((\d+(?:\.\d+)?)/100%\)")


@dataclass(frozen=True)
class ImageFile:
    path: str
    format: str  # "qcow2" or "raw"
    virtual_size: int
    actual_size: int | None


QCOW2_MAGIC = b"QFI\xfb"
FORMATS = ("qcow2", "raw")


def detect_format(path: str, field: str = "image") -> str:
    """What the file claims to be: qcow2 by its magic, else what qemu-img's probe names it (only to
    refuse vmdk, vdi and the like). The image is then read as that format, told explicitly, and a
    qcow2 that points at another file (a backing file, an external data file) is refused."""
    with open(path, "rb") as handle:
        if handle.read(4) == QCOW2_MAGIC:
            return "qcow2"
    result = run(["qemu-img", "info", "--output=json", "--", path], timeout=60, backend=BACKEND)
    if not result.ok:
        raise ValidationError(f"qemu-img cannot read {path}: {result.error_text()}", field=field)
    try:
        return str(json.loads(result.stdout).get("format") or "raw")
    except ValueError as exc:
        raise BackendError(BACKEND, f"unexpected qemu-img info output for {path}") from exc


def inspect(path: str, field: str = "image", image_format: str | None = None) -> ImageFile:
    """Check that ``path`` is a readable qcow2 or raw image that stands alone; say precisely what is
    wrong if not. ``image_format`` is what the caller knows it to be (a domain's ``<driver type>``);
    without it the file's own header decides. qemu-img is always told the format.
    """
    if not path:
        raise ValidationError("no image file given", field=field)
    if not os.path.exists(path):
        raise ValidationError(f"{path} does not exist", field=field)
    if not os.path.isfile(path):
        raise ValidationError(f"{path} is not a regular file", field=field)
    if not os.access(path, os.R_OK):
        raise ValidationError(f"{path} is not readable", field=field)
    fmt = image_format or detect_format(path, field)
    if fmt not in FORMATS:
        raise ValidationError(f"{path} is a {fmt} image; only qcow2 and raw can be imported", field=field)
    result = run(["qemu-img", "info", "--output=json", "-f", fmt, "--", path], timeout=60, backend=BACKEND)
    if not result.ok:
        raise ValidationError(f"qemu-img cannot read {path} as {fmt}: {result.error_text()}", field=field)
    try:
        info = json.loads(result.stdout)
    except ValueError as exc:
        raise BackendError(BACKEND, f"unexpected qemu-img info output for {path}") from exc
    if info.get("backing-filename"):
        raise ValidationError(f"{path} has a backing file ({info['backing-filename']}); flatten it first", field=field)
    specific = (info.get("format-specific") or {}).get("data") or {}
    if specific.get("data-file"):
        raise ValidationError(
            f"{path} keeps its data in another file ({specific['data-file']}); vmconsole imports"
            " self-contained images only: convert it first (`qemu-img convert -O qcow2 ...`)",
            field=field,
        )
    size = int(info.get("virtual-size", 0))
    if size <= 0:
        raise ValidationError(f"{path} is empty", field=field)
    return ImageFile(path, fmt, size, info.get("actual-size"))


def rbd_target(ceph: CephSection, image: str) -> str:
    """qemu's rbd: filename for an image, with this configuration's pool, namespace, conf and user."""
    location = f"{ceph.pool}/{ceph.namespace}/{image}" if ceph.namespace else f"{ceph.pool}/{image}"
    for value in (location, ceph.conf, ceph.client_id):
        if ":" in value or "@" in value:
            raise ValidationError(f"{value!r} cannot be used in a qemu rbd target", field="ceph")
    return f"rbd:{location}:id={ceph.client_id}:conf={ceph.conf}"


def import_to_rbd(
    source: ImageFile,
    ceph: CephSection,
    image: str,
    progress: Callable[[int, int], None],
    cancelled: Callable[[], bool],
) -> None:
    """Copy ``source`` into the existing, zeroed RBD ``image`` (qemu-img convert -n), reporting bytes.

    Out-of-order writes with 16 coroutines: twice as fast as sequential on RBD.
    """
    argv = [
        "qemu-img",
        "convert",
        "-p",
        "-n",
        "--target-is-zero",
        "-W",
        "-m",
        "16",
        "-f",
        source.format,
        "-O",
        "raw",
        "--",
        source.path,
        rbd_target(ceph, image),
    ]
    size = source.virtual_size
    copy = follow_progress(
        argv,
        progress_on="stdout",
        percent=_PROGRESS,
        report=lambda percent: progress(int(size * percent / 100), size),
        cancelled=cancelled,
        stall_after=ceph.copy_stall_timeout,
    )
    if copy.cancelled:
        raise Cancelled("import cancelled by the operator")
    if copy.stalled:
        raise BackendTimeout(BACKEND, f"import into {image} made no progress for {ceph.copy_stall_timeout:g} s")
    if copy.returncode != 0:
        raise BackendError(BACKEND, f"import into {image} failed: {copy.last_error}")
    progress(size, size)
