"""The detector service: faces, batched emotion inference, tracking, privacy masks.

    python -m detector [--model models/emotion.keras] [--detector yunet|haar]
                       [--max-batch N] [--max-wait-ms MS] [--min-face PX] [--confidence C]
                       [--downscale W] [--detect-refresh-frames N]
                       [--cameras cameras.yaml] [--group-id detector]
                       [--delivery-timeout-ms MS]

Reads `{prefix}.frames`, writes one DetectionMessage per frame to `{prefix}.detections`
and poison frames to `{prefix}.deadletter` (evidence only, never pixels; a poison frame
whose headers parsed also gets a DetectionMessage with `skipped` set). Input offsets are
committed only once everything sent for them is acknowledged (detector/service.py).
Every flag also has an env form
MOODSTREAM_DETECTOR_<FLAG> (e.g. MOODSTREAM_DETECTOR_MAX_BATCH). Run several processes
with the same --group-id to share the frames partitions.

Detection width: frames wider than --downscale are shrunk for detection. While a camera
shows faces, frames are shrunk further, to where its smallest face is still ~40 px, and
every N-th frame (--detect-refresh-frames, 8) is detected at the full width, so a new
face too small for the reduced width is found within N-1 frames (detector/scaling.py).
--detect-refresh-frames 1 detects every frame at the full width.

Privacy masks: the cameras file (the one ingest reads) may give a camera `roi` polygons;
for the detector these are EXCLUDED zones. Points are frame fractions or pixels:

    cameras:
      - id: till-1
        url: rtsp://...
        roi:
          - [[0, 0], [0.4, 0], [0.4, 1], [0, 1]]   # staff side of the counter
"""
