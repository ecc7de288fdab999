"""qemu-img: detect an image's format and import it into RBD with real progress."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass

from vmconsole.backends.proc import follow_progress, run
from vmconsole.config import CephSection
from vmconsole.domain.errors import BackendError, Cancelled, ValidationError

BACKEND = "qemu-img"
_PROGRESS = re.compile(rb"\((\d+(?:\.\d+)?)/100%\)")


@dataclass(frozen=True)
class ImageFile:
    path: str
    format: str  # "qcow2" or "raw"
    virtual_size: int
    actual_size: int | None


def inspect(path: str, field: str = "image") -> ImageFile:
    """Check that ``path`` is a readable qcow2 or raw image; say precisely what is wrong if not."""
    if not path:
        raise ValidationError("no image file given", field=field)
    if not os.path.exists(path):
        raise ValidationError(f"{path} does not exist", field=field)
    if not os.path.isfile(path):
        raise ValidationError(f"{path} is not a regular file", field=field)
    if not os.access(path, os.R_OK):
        raise ValidationError(f"{path} is not readable", field=field)
    result = run(["qemu-img", "info", "--output=json", "--", path], timeout=60, backend=BACKEND)
    if not result.ok:
        raise ValidationError(f"qemu-img cannot read {path}: {result.error_text()}", field=field)
    try:
        info = json.loads(result.stdout)
    except ValueError as exc:
        raise BackendError(BACKEND, f"unexpected qemu-img info output for {path}") from exc
    fmt = info.get("format")
    if fmt not in ("qcow2", "raw"):
        raise ValidationError(f"{path} is a {fmt} image; only qcow2 and raw can be imported", field=field)
    if info.get("backing-filename"):
        raise ValidationError(f"{path} has a backing file ({info['backing-filename']}); flatten it first", field=field)
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
    )
    if copy.cancelled:
        raise Cancelled("import cancelled by the operator")
    if copy.returncode != 0:
        raise BackendError(BACKEND, f"import into {image} failed: {copy.last_error}")
    progress(size, size)
