"""Per-camera detection width: shrink frames further while the faces in view are large.

YuNet's cost grows with the pixels it scans (~26 ms at 640x360 vs ~2 ms at 180x100 on
the shared 2-core host), and a 145 px face in a 640 px frame is as easy to find at
180 px wide as at 640. So while a camera's latest frame showed faces, the next frames
are detected at the width where the smallest of those faces is still `target_px` wide,
well above the ~20 px where YuNet's recall starts to fall (WIDER subset,
benchmarks/face_detectors.py). Every `refresh_frames`-th frame, and every frame after
one with no faces, is detected at the full detection width (the `downscale` cap), so a
face too small for the reduced width is found on the next full pass: a new small face
is late by at most refresh_frames - 1 frames. refresh_frames = 1 turns this off.
"""

from __future__ import annotations

from dataclasses import dataclass

from detector.faces import FaceBox
from detector.percamera import PerCamera

# Smallest face side, in detection pixels, that the reduced passes aim for: 2x the size
# where YuNet's recall starts to drop, so a face that shrinks or turns between two full
# passes is still found.
TARGET_FACE_PX = 40
# Below this YuNet's fixed strides leave too few cells to be worth the saving.
MIN_WIDTH = 160


@dataclass
class _CameraState:
    frames_since_full: int = 0
    smallest_face: int = 0  # min side of the smallest face on the last frame; 0 = none


class DetectionScaler:
    """Chooses each frame's detection width from the camera's last faces."""

    def __init__(self, full_width: int, refresh_frames: int = 8,
                 target_px: int = TARGET_FACE_PX, min_width: int = MIN_WIDTH):
        self.full_width = full_width  # the detector's downscale cap; 0 = the frame's width
        self.refresh_frames, self.target_px, self.min_width = refresh_frames, target_px, min_width
        self._cameras: PerCamera[_CameraState] = PerCamera(_CameraState)

    def width_for(self, camera_id: str, frame_width: int) -> int:
        """Detection width for this camera's next frame (the full width on a refresh)."""
        full = min(frame_width, self.full_width) if self.full_width > 0 else frame_width
        state = self._cameras.get(camera_id)
        due = state.frames_since_full + 1 >= self.refresh_frames
        if self.refresh_frames <= 1 or due or not state.smallest_face:
            state.frames_since_full = 0
            return full
        state.frames_since_full += 1
        wanted = frame_width * self.target_px / state.smallest_face
        return int(min(full, max(self.min_width, wanted)))

    def observe(self, camera_id: str, boxes: list[FaceBox]) -> None:
        """The faces found on the frame just detected (full-resolution pixels)."""
        state = self._cameras.get(camera_id)
        state.smallest_face = min((min(b.w, b.h) for b in boxes), default=0)
