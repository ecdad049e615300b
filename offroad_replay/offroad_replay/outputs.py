"""The files of one offline evaluation run: each written atomically, all removed again when the
run fails, so an output directory holds either a finished run or nothing new."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from offroad_core.atomic import atomic_path, atomic_write_text

VIDEO_NAME = "overlay.mp4"
VIDEO_FPS = 10.0


class RunOutputs:
    """Writes PNGs, an mp4 and text files under ``out`` and remembers what it wrote."""

    def __init__(self, out: str | Path) -> None:
        """Nothing is created until the first file is written."""
        self.out = Path(out)
        self.written: list[str] = []
        self._created: list[Path] = []  # directories this run made, deepest first
        self._video: Any = None
        self._video_tmp: Any = None

    def png(self, relative: str, rgb: np.ndarray) -> None:
        """Write an RGB uint8 picture."""
        path = self._new_file(relative)
        with atomic_path(path) as tmp:
            if not cv2.imwrite(str(tmp), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
                raise OSError(f"cannot write {path}")
        self.written.append(relative)

    def text(self, relative: str, text: str) -> None:
        """Write a UTF-8 text file."""
        atomic_write_text(self._new_file(relative), text)
        self.written.append(relative)

    def video_frame(self, rgb: np.ndarray) -> None:
        """Append a frame to ``overlay.mp4`` (cv2 ``mp4v``; in place after :meth:`close_video`)."""
        if self._video is None:
            self._video_tmp = atomic_path(self._new_file(VIDEO_NAME))
            tmp = self._video_tmp.__enter__()
            h, w = rgb.shape[:2]
            self._video = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), VIDEO_FPS,
                                          (w, h))
            if not self._video.isOpened():
                self._abort_video()
                raise OSError("cv2.VideoWriter cannot write mp4 (mp4v) here; use PNG overlays")
        self._video.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))

    def close_video(self) -> None:
        """Finish ``overlay.mp4`` (no-op without video frames)."""
        if self._video is None:
            return
        self._video.release()
        self._video = None
        self._video_tmp.__exit__(None, None, None)
        self.written.append(VIDEO_NAME)

    def _new_file(self, relative: str) -> Path:
        """``out / relative``, remembering which of its directories do not exist yet."""
        path = self.out / relative
        missing = [p for p in path.parents if not p.exists()]
        self._created = [*missing, *(p for p in self._created if p not in missing)]
        return path

    def _abort_video(self) -> None:
        if self._video_tmp is not None:
            if self._video is not None:
                self._video.release()
            self._video = None
            self._video_tmp.__exit__(RuntimeError, RuntimeError("aborted"), None)
            self._video_tmp = None

    def discard(self) -> None:
        """Remove every file this run wrote and the directories it created (the run failed)."""
        self._abort_video()
        for relative in self.written:
            (self.out / relative).unlink(missing_ok=True)
        self.written.clear()
        for path in sorted(self._created, key=lambda p: len(p.parts), reverse=True):
            if path.is_dir() and not any(path.iterdir()):
                path.rmdir()
