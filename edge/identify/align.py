"""Faces onto the standard 112×112 recognition template, from BlazeFace keypoints.

SFace (like ArcFace) was trained on faces warped so that eyes, nose and mouth
land on fixed points of a 112×112 crop. BlazeFace gives the eyes, the nose tip
and the mouth centre (plus the ears, which the template lacks), so we fit a
similarity transform (rotation, uniform scale, shift) from those four points
to the template's eyes, nose and the midpoint of its mouth corners.
"""

from __future__ import annotations

import cv2
import numpy as np

SIZE = 112

# The ArcFace/SFace 5-point template (OpenCV FaceRecognizerSF.alignCrop) with its
# two mouth corners merged into the mouth centre, in image order: the person's
# right eye is on the image's left. Rows match BlazeFace keypoints 0..3.
TEMPLATE = np.array(
    [
        [38.2946, 51.6963],  # right eye
        [73.5318, 51.5014],  # left eye
        [56.0252, 71.7366],  # nose tip
        [56.1396, 92.2848],  # mouth centre
    ],
    dtype=np.float64,
)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2×3 least-squares similarity transform taking ``src`` points to ``dst`` (Umeyama)."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    covariance = dst_c.T @ src_c / len(src)
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1  # a reflection is not a pose: keep a proper rotation
    rotation = u @ sign @ vt
    variance = (src_c**2).sum() / len(src)
    scale = float((singular * np.diag(sign)).sum() / variance) if variance > 0 else 1.0
    shift = dst_mean - scale * rotation @ src_mean
    return np.hstack([scale * rotation, shift[:, None]])


def align_face(image: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """A 112×112 crop of ``image`` (BGR) warped onto the template; keypoints (≥4, 2) in pixels."""
    matrix = similarity_transform(np.asarray(keypoints)[:4], TEMPLATE)
    return cv2.warpAffine(
        image, matrix, (SIZE, SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def centre_keypoints(width: int, height: int) -> np.ndarray:
    """Keypoints of a frontal face in a face-centred crop (LFW-style images).

    The fallback when the detector finds nothing. Measured on LFW's 250×250
    images (median BlazeFace keypoints of 150 faces): the eyes' midpoint lies
    at (0.503, 0.455) of the image and the eyes are 0.183 of its side apart.
    Evaluation counts and reports every use.
    """
    eye_midpoint = (TEMPLATE[0] + TEMPLATE[1]) / 2
    eye_distance = float(np.hypot(*(TEMPLATE[1] - TEMPLATE[0])))
    scale = 0.183 * min(width, height) / eye_distance
    points = (TEMPLATE - eye_midpoint) * scale + np.array([0.503 * width, 0.455 * height])
    return np.asarray(points, dtype=np.float32)
