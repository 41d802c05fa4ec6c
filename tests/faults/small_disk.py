"""A small filesystem for the edge's state: a tmpfs of a few MB in a private mount namespace.

A sleeping holder process (`unshare --mount`) mounts the tmpfs and keeps the namespace alive, so
the filesystem outlives an edge process that dies; the edge runs inside through `nsenter`
(`enter`). Nothing is mounted on the host: the tmpfs goes away with the holder. The test reaches
the files through the holder's root, `/proc/<pid>/root/...` (`path`).

As root it needs `mount` to work (CAP_SYS_ADMIN, as on the CI machine); as another user the
namespace maps that user to root (`--map-root-user`, unprivileged user namespaces).
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path
from types import TracebackType
from typing import Self

from tests.fixtures.services import wait_until

CHUNK = b"\0" * 65_536
_ROOT = os.geteuid() == 0


class SmallDisk:
    """`with SmallDisk(mountpoint, size) as disk`: `mountpoint` is a tmpfs of `size_bytes`."""

    def __init__(self, mountpoint: Path, size_bytes: int) -> None:
        self.mountpoint = mountpoint.resolve()
        self.size_bytes = size_bytes
        self._holder: subprocess.Popen[bytes] | None = None
        self._ballast = "ballast"

    def __enter__(self) -> Self:
        unshare = shutil.which("unshare")
        assert unshare is not None, "'unshare' is missing: install the Debian package util-linux"
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        script = 'mount -t tmpfs -o "size=$1" faults-state "$0" && exec sleep 600'
        self._holder = subprocess.Popen(
            [
                unshare,
                "--mount",
                "--propagation=private",
                *([] if _ROOT else ["--map-root-user"]),
                "sh",
                "-c",
                script,
                str(self.mountpoint),
                str(self.size_bytes),
            ],
            stderr=subprocess.PIPE,
        )
        try:
            wait_until(self._mounted, 10, f"a tmpfs at {self.mountpoint}")
        except TimeoutError:
            self._end()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._end()

    @property
    def enter(self) -> list[str]:
        """The command prefix that runs a program inside the namespace."""
        nsenter = shutil.which("nsenter")
        assert nsenter is not None, "'nsenter' is missing: install the Debian package util-linux"
        inside = ["--mount"] if _ROOT else ["--user", "--mount", "--preserve-credentials"]
        return [nsenter, f"--target={self._pid}", *inside, "--"]

    def path(self, relative: str = "") -> Path:
        """A path on the small filesystem, as the test reaches it."""
        return Path(f"/proc/{self._pid}/root") / self.mountpoint.relative_to("/") / relative

    def fill(self) -> int:
        """Write a ballast file until the filesystem is full; the bytes it took."""
        written = 0
        with self.path(self._ballast).open("wb", buffering=0) as ballast:
            try:
                while True:
                    written += ballast.write(CHUNK)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
        return written

    def free(self) -> None:
        """Remove the ballast: the space comes back."""
        self.path(self._ballast).unlink()

    @property
    def _pid(self) -> int:
        assert self._holder is not None
        return self._holder.pid

    def _mounted(self) -> bool:
        holder = self._holder
        assert holder is not None
        if holder.poll() is not None:
            error = holder.stderr.read().decode() if holder.stderr else ""
            raise AssertionError(f"cannot mount a tmpfs (needs mount rights): {error.strip()}")
        mountinfo = Path(f"/proc/{holder.pid}/mountinfo").read_text()
        return any(line.split()[4] == str(self.mountpoint) for line in mountinfo.splitlines())

    def _end(self) -> None:
        holder = self._holder
        if holder is not None and holder.poll() is None:
            holder.kill()
            holder.wait(10)
