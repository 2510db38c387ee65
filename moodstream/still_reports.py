"""The report of a stills job: the session report plus one entry per image.

An image's faces, people, mean emotions and sentiment are its second of the session's
timeline (the aggregator's numbers); its boxes and per-face emotions come from its
detection message, with boxes scaled back to the image's own pixels. These are numbers
about faces (never pixels): they exist for the one who asked to analyse these images,
in the file they asked for, and nowhere in Redis.
"""

from __future__ import annotations

import csv
import html
import io
from pathlib import Path
from typing import Any, Iterable, Mapping

from moodstream.emotions import EMOTIONS, sentiment
from moodstream.reports import render
from moodstream.schemas import DetectionMessage, Face
from moodstream.still_jobs import Still, StillJob
from moodstream.stills import STILL_SPACING_S


def still_report(report: dict[str, Any], job: StillJob,
                 detections: Iterable[DetectionMessage]) -> dict[str, Any]:
    """`report` (the session's) with `images` (one entry per readable image, in order)
    and `unreadable_images` (skipped, with the reason)."""
    by_index = {round(d.offset_s / STILL_SPACING_S): d for d in detections}
    seconds = {entry["t"]: entry for entry in report["timeline"]}
    valence = report["valence_weights"]
    images = [_entry(index, still, seconds.get(index), by_index.get(index), valence)
              for index, still in enumerate(job.stills)]
    return dict(report, source=job.label, images=images,
                unreadable_images=[{"file": str(path), "reason": why}
                                   for path, why in job.unreadable])


def _entry(index: int, still: Still, second: Mapping | None, message: DetectionMessage | None,
           valence: Mapping[str, float]) -> dict[str, Any]:
    entry: dict[str, Any] = {"index": index, "file": str(still.path), "width": still.width,
                             "height": still.height}
    if second is None or message is None:  # never reached the aggregator (or its boxes us)
        return entry | {"analysed": False}
    faces = [_face(face, still, message, valence) for face in message.faces]
    emotions, hidden = second["emotions"], second.get("suppressed")
    if hidden:  # fewer people than min_people: where the faces are, not how they felt
        faces = [dict(f, emotions=None, dominant_emotion=None, sentiment=None) for f in faces]
    return entry | {
        "analysed": True, "skipped": message.skipped or None, "faces": second["faces"],
        "people": second["people"], "excluded_faces": message.excluded_faces,
        "sentiment": second["sentiment"], "emotions": emotions,
        "dominant_emotion": max(emotions, key=emotions.get) if second["faces"] and not hidden
        else None, "detections": faces, **({"suppressed": hidden} if hidden else {})}


def _face(face: Face, still: Still, message: DetectionMessage,
          valence: Mapping[str, float]) -> dict[str, Any]:
    probs = face.smoothed if face.smoothed is not None else face.probs
    # The detector saw the frame ingest encoded (downscaled to max_width): back to the image.
    sx = still.width / message.frame_w if message.frame_w else 1.0
    sy = still.height / message.frame_h if message.frame_h else 1.0
    x, y, w, h = face.box
    return {"box": [round(x * sx), round(y * sy), round(w * sx), round(h * sy)],
            "score": face.score, "emotions": {e: round(probs[e], 4) for e in EMOTIONS},
            "dominant_emotion": max(probs, key=probs.get),
            "sentiment": round(sentiment(probs, valence), 4)}


def stills_csv(report: Mapping[str, Any]) -> str:
    """One row per image (unreadable ones too), boxes as "x y w h" separated by "|"."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["session_id", "camera_id", "index", "file", "status", "faces", "people",
                     "sentiment", "dominant_emotion", *EMOTIONS, "boxes"])
    ids = [report["session_id"], report["camera_id"]]
    for image in report["images"]:
        if not image["analysed"]:
            writer.writerow([*ids, image["index"], image["file"], "not analysed",
                             *[""] * (5 + len(EMOTIONS))])
            continue
        boxes = "|".join(" ".join(map(str, d["box"])) for d in image["detections"])
        writer.writerow([*ids, image["index"], image["file"],
                         image["skipped"] or image.get("suppressed") or "analysed",
                         image["faces"], image["people"], _blank(image["sentiment"]),
                         image["dominant_emotion"] or "",
                         *(image["emotions"][e] for e in EMOTIONS), boxes])
    for image in report["unreadable_images"]:
        writer.writerow([*ids, "", image["file"], f"unreadable: {image['reason']}",
                         *[""] * (5 + len(EMOTIONS))])
    return buf.getvalue()


def _blank(value: Any) -> Any:
    return "" if value is None else value


def stills_html(report: Mapping[str, Any]) -> str:
    """The session's HTML report with a table of the images before the end of the body."""
    rows = []
    for image in report["images"]:
        sentiment_ = image.get("sentiment")
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in (
            image["file"], image.get("faces", "—"), image.get("dominant_emotion") or "—",
            "—" if sentiment_ is None else f"{sentiment_:+.2f}",
            "; ".join(" ".join(map(str, d["box"])) for d in image.get("detections", []))
            or "—")) + "</tr>")
    for image in report["unreadable_images"]:
        rows.append(f"<tr><td>{html.escape(image['file'])}</td>"
                    f"<td colspan='4'>unreadable: {html.escape(image['reason'])}</td></tr>")
    table = ("<h2>Images</h2><table id='images'><tr><th>Image</th><th>Faces</th>"
             "<th>Dominant emotion</th><th>Sentiment</th><th>Boxes (x y w h)</th></tr>"
             + "\n".join(rows) + "</table>\n")
    page = render(report, "html")
    return page.replace("</body>", table + "</body>", 1)


def render_stills(report: Mapping[str, Any], fmt: str):
    """A stills report in `fmt`: CSV one row per image, HTML with an images table; JSON
    (images included) and PDF as any session report."""
    if fmt == "csv":
        return stills_csv(report)
    if fmt == "html":
        return stills_html(report)
    return render(report, fmt)


def stills_summary(path: Path, report: Mapping[str, Any]) -> str:
    mood = report["mean_sentiment"]
    unreadable = len(report["unreadable_images"])
    return (f"wrote {path}: {len(report['images'])} image(s)"
            f"{f' ({unreadable} unreadable, skipped)' if unreadable else ''}, "
            f"{report['faces_detected']} faces, dominant {report['dominant_emotion'] or 'none'}, "
            f"mean sentiment {'n/a' if mood is None else f'{mood:+.2f}'}")
