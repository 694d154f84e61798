"""A chest X-ray phantom: patient anatomy plus one visual trace per finding, drawn with numpy.

The traces are built to be learnable but not trivial, so that AUC rises with more training data:
each finding has its own shape, place or texture, but with random position, size and intensity
(sometimes faint), several findings look alike (Nodule/Mass by size, Consolidation/Pneumonia/
Infiltration as bright patches, Effusion/Pleural_Thickening at the lung border), and patient
anatomy varies as much as some findings change it (a large normal heart vs. Cardiomegaly).
Coordinates are fractions of the image side, so every size draws the same picture.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image

Field = np.ndarray  # float32, (size, size), intensity added to the picture

# How strongly the added traces show (the amplitudes below are relative). Measured with the job's
# CNN on 2,000 images at 64 px, 3 epochs, macro AUC with all / a tenth of the training data:
# contrast 1.0 gave 0.68 / 0.51, contrast 2.2 gave 0.75 / 0.56. 2.0 keeps the task far from
# trivial while the learning curve stands clear of the noise.
TRACE_CONTRAST = 2.0


@dataclass(frozen=True)
class Anatomy:
    """What stays the same across one patient's images (so images of a patient correlate)."""

    body_rx: float
    lung_dx: float  # distance of each lung centre from the midline
    lung_cy: float
    lung_rx: float
    lung_ry: float
    heart_cx: float
    heart_rx: float
    heart_ry: float
    rib_frequency: float
    rib_phase: float
    tissue: float  # brightness of soft tissue
    lung: float  # brightness of aerated lung


def draw_anatomy(rng: np.random.Generator) -> Anatomy:
    return Anatomy(
        body_rx=0.40 + rng.normal(0, 0.02),
        lung_dx=0.18 + rng.normal(0, 0.01),
        lung_cy=0.44 + rng.normal(0, 0.015),
        lung_rx=0.13 * float(np.exp(rng.normal(0, 0.06))),
        lung_ry=0.27 * float(np.exp(rng.normal(0, 0.05))),
        heart_cx=0.53 + rng.normal(0, 0.01),
        heart_rx=0.115 * float(np.exp(rng.normal(0, 0.10))),  # wide: overlaps mild Cardiomegaly
        heart_ry=0.10 * float(np.exp(rng.normal(0, 0.08))),
        rib_frequency=9.0 + rng.normal(0, 0.7),
        rib_phase=float(rng.uniform(0, 2 * np.pi)),
        tissue=0.58 + rng.normal(0, 0.04),
        lung=0.24 + rng.normal(0, 0.03),
    )


class Canvas:
    """The pixel grid of one image, with the shapes every trace is drawn from."""

    def __init__(self, size: int, shift_u: float, shift_v: float) -> None:
        centres = (np.arange(size, dtype=np.float32) + 0.5) / size
        self.size = size
        self.v, self.u = np.meshgrid(centres - shift_v, centres - shift_u, indexing="ij")

    def ellipse(self, cu: float, cv: float, ru: float, rv: float, edge: float = 0.015) -> Field:
        """1 inside, 0 outside, with a soft edge about `edge` wide."""
        r = np.sqrt(((self.u - cu) / ru) ** 2 + ((self.v - cv) / rv) ** 2)
        return 1.0 / (1.0 + np.exp((r - 1.0) * min(ru, rv) / edge))

    def blob(self, cu: float, cv: float, su: float, sv: float, angle: float = 0.0) -> Field:
        """A Gaussian bump of peak 1, rotated by `angle`."""
        cos, sin = np.cos(angle), np.sin(angle)
        du, dv = self.u - cu, self.v - cv
        a, b = du * cos + dv * sin, -du * sin + dv * cos
        return np.exp(-0.5 * ((a / su) ** 2 + (b / sv) ** 2))

    def texture(self, rng: np.random.Generator, cells: int) -> Field:
        """Smooth random texture of mean ~0, std ~1, with about `cells` blobs across the image."""
        coarse = rng.normal(0, 1, (cells, cells)).astype(np.float32)
        fine = Image.fromarray(coarse).resize((self.size, self.size), Image.Resampling.BICUBIC)
        return np.asarray(fine, dtype=np.float32)


@dataclass(frozen=True)
class Scene:
    """One image: the patient's anatomy as it appears today, and the canvas to draw on."""

    anatomy: Anatomy
    canvas: Canvas
    rng: np.random.Generator

    def lung_mask(self, side: int) -> Field:
        a = self.anatomy
        return self.canvas.ellipse(0.5 + side * a.lung_dx, a.lung_cy, a.lung_rx, a.lung_ry)

    def point_in_lung(self, side: int, v_low: float = -0.8, v_high: float = 0.8) -> tuple[float, float]:
        """A random point inside one lung; v_low..v_high picks a band (-1 apex, +1 base)."""
        a = self.anatomy
        t = self.rng.uniform(v_low, v_high)
        half_width = np.sqrt(max(1 - t * t, 0.05)) * 0.8
        s = self.rng.uniform(-half_width, half_width)
        return 0.5 + side * a.lung_dx + s * a.lung_rx, a.lung_cy + t * a.lung_ry

    def side(self) -> int:
        return int(self.rng.choice((-1, 1)))

    def strength(self) -> float:
        """How visible a finding is today: often clear, sometimes faint."""
        return float(self.rng.uniform(0.35, 1.0))


# ---- one trace per finding: each returns intensity to add (most are inside the lungs)


def _nodule(scene: Scene) -> Field:
    cu, cv = scene.point_in_lung(scene.side())
    sigma = scene.rng.uniform(0.018, 0.035)
    return 0.32 * scene.strength() * scene.canvas.blob(cu, cv, sigma, sigma)


def _mass(scene: Scene) -> Field:
    cu, cv = scene.point_in_lung(scene.side(), -0.6, 0.6)
    sigma = scene.rng.uniform(0.035, 0.07)  # the small ones look like large nodules
    return 0.28 * scene.strength() * scene.canvas.blob(cu, cv, sigma, sigma * scene.rng.uniform(0.8, 1.2))


def _patch(scene: Scene, v_low: float, v_high: float, spread: float, cells: int, solid: float) -> Field:
    """A bright patch in one lung: `solid` 1 is homogeneous, 0 is mottled texture only."""
    side = scene.side()
    cu, cv = scene.point_in_lung(side, v_low, v_high)
    envelope = scene.canvas.blob(
        cu, cv, spread, spread * scene.rng.uniform(0.7, 1.4), scene.rng.uniform(0, np.pi)
    )
    mottle = np.clip(0.5 + 0.5 * scene.canvas.texture(scene.rng, cells), 0, 1.5)
    return envelope * (solid + (1 - solid) * mottle) * scene.lung_mask(side)


def _infiltration(scene: Scene) -> Field:
    return 0.24 * scene.strength() * _patch(scene, -0.7, 0.7, 0.09, 12, solid=0.1)


def _consolidation(scene: Scene) -> Field:
    return 0.30 * scene.strength() * np.clip(1.6 * _patch(scene, -0.5, 0.8, 0.07, 8, solid=0.9), 0, 1)


def _pneumonia(scene: Scene) -> Field:
    return 0.28 * scene.strength() * _patch(scene, 0.0, 0.8, 0.08, 10, solid=0.5)


def _effusion(scene: Scene) -> Field:
    """Fluid at a lung base: a level that rises towards the outer wall (the meniscus)."""
    a, rng = scene.anatomy, scene.rng
    field = np.zeros_like(scene.canvas.u)
    for side in (-1, 1) if rng.random() < 0.3 else (scene.side(),):
        cu = 0.5 + side * a.lung_dx
        lateral = np.clip((scene.canvas.u - cu) * side / a.lung_rx, -1, 1)
        level = a.lung_cy + a.lung_ry * (1 - rng.uniform(0.25, 0.6) - 0.25 * (lateral + 1) / 2)
        below = 1 / (1 + np.exp(-(scene.canvas.v - level) / 0.015))
        field += below * scene.lung_mask(side)
    return 0.34 * scene.strength() * field


def _atelectasis(scene: Scene) -> Field:
    """A thin, slanted band of collapsed lung, usually in the lower half."""
    side = scene.side()
    cu, cv = scene.point_in_lung(side, 0.0, 0.8)
    angle = scene.rng.uniform(-0.5, 0.5)
    band = scene.canvas.blob(cu, cv, scene.rng.uniform(0.06, 0.1), scene.rng.uniform(0.012, 0.022), angle)
    return 0.34 * scene.strength() * band * scene.lung_mask(side)


def _pneumothorax(scene: Scene) -> Field:
    """Air outside the lung at the apex/outer edge: darker, and the rib/lung texture is gone there."""
    a, side = scene.anatomy, scene.side()
    cu = 0.5 + side * (a.lung_dx + a.lung_rx * 0.55)
    cv = a.lung_cy - a.lung_ry * scene.rng.uniform(0.3, 0.7)
    crescent = scene.canvas.blob(cu, cv, 0.05, scene.rng.uniform(0.08, 0.14))
    return -0.20 * scene.strength() * crescent * scene.lung_mask(side)


def _pleural_thickening(scene: Scene) -> Field:
    """A bright rim along the outer border of one lung, over part of its height."""
    a, side = scene.anatomy, scene.side()
    cu = 0.5 + side * a.lung_dx
    outer = scene.lung_mask(side) - scene.canvas.ellipse(cu, a.lung_cy, a.lung_rx * 0.86, a.lung_ry * 0.93)
    lateral = np.clip((scene.canvas.u - cu) * side / a.lung_rx, 0, 1)
    segment = scene.canvas.blob(cu, a.lung_cy + a.lung_ry * scene.rng.uniform(-0.5, 0.5), 1.0, 0.12)
    return 0.38 * scene.strength() * np.clip(outer, 0, 1) * lateral * segment


def _edema(scene: Scene) -> Field:
    """Haze around both hila (the 'butterfly'), with fine horizontal lines at the bases."""
    a, canvas = scene.anatomy, scene.canvas
    haze = sum(
        canvas.blob(0.5 + side * a.lung_dx * 0.7, a.lung_cy + 0.03, 0.09, 0.12) * scene.lung_mask(side)
        for side in (-1, 1)
    )
    lines = 0.5 + 0.5 * np.sin(2 * np.pi * canvas.v * 40 + scene.rng.uniform(0, 2 * np.pi))
    base = np.clip((canvas.v - a.lung_cy) / a.lung_ry, 0, 1)
    lungs = scene.lung_mask(-1) + scene.lung_mask(1)
    return scene.strength() * (0.17 * haze + 0.07 * lines * base * lungs)


def _fibrosis(scene: Scene) -> Field:
    """Fine reticular texture in both lower lungs."""
    a, canvas = scene.anatomy, scene.canvas
    reticular = np.abs(canvas.texture(scene.rng, max(canvas.size // 3, 8)))
    lower = np.clip((canvas.v - a.lung_cy + 0.05) / a.lung_ry, 0, 1)
    lungs = scene.lung_mask(-1) + scene.lung_mask(1)
    return 0.16 * scene.strength() * reticular * lower * lungs


def _hernia(scene: Scene) -> Field:
    """A round opacity behind the lower heart, near the midline."""
    a = scene.anatomy
    cu = 0.5 + scene.rng.normal(0, 0.02)
    cv = a.lung_cy + a.lung_ry * 0.75 + scene.rng.normal(0, 0.02)
    return 0.28 * scene.strength() * scene.canvas.blob(cu, cv, 0.05, 0.04)


def _enlarge_heart(anatomy: Anatomy, rng: np.random.Generator) -> Anatomy:
    grow = 1.2 + 0.3 * rng.uniform(0.3, 1.0)
    return replace(
        anatomy, heart_rx=anatomy.heart_rx * grow, heart_ry=anatomy.heart_ry * (1 + (grow - 1) / 3)
    )


def _overinflate(anatomy: Anatomy, rng: np.random.Generator) -> Anatomy:
    grow = 1.05 + 0.08 * rng.uniform(0.3, 1.0)
    return replace(
        anatomy,
        lung_rx=anatomy.lung_rx * grow,
        lung_ry=anatomy.lung_ry * grow,
        lung=anatomy.lung - 0.07 * (grow - 1) / 0.08,
        rib_frequency=anatomy.rib_frequency * 0.85,
    )


# Findings that change the anatomy itself rather than adding a trace on top.
ANATOMY_CHANGES: dict[str, Callable[[Anatomy, np.random.Generator], Anatomy]] = {
    "Cardiomegaly": _enlarge_heart,
    "Emphysema": _overinflate,
}
TRACES: dict[str, Callable[[Scene], Field]] = {
    "Infiltration": _infiltration,
    "Effusion": _effusion,
    "Atelectasis": _atelectasis,
    "Nodule": _nodule,
    "Mass": _mass,
    "Pneumothorax": _pneumothorax,
    "Consolidation": _consolidation,
    "Pleural_Thickening": _pleural_thickening,
    "Edema": _edema,
    "Fibrosis": _fibrosis,
    "Pneumonia": _pneumonia,
    "Hernia": _hernia,
}


def _chest(scene: Scene) -> Field:
    """The normal chest: body, two dark lungs with rib shadows, heart, spine, diaphragm."""
    a, canvas = scene.anatomy, scene.canvas
    body = canvas.ellipse(0.5, 0.58, a.body_rx, 0.52, edge=0.03)
    lungs = scene.lung_mask(-1) + scene.lung_mask(1)
    ribs = 0.5 + 0.5 * np.sin(
        2 * np.pi * (canvas.v * a.rib_frequency + 1.5 * (canvas.u - 0.5) ** 2) + a.rib_phase
    )
    heart = canvas.ellipse(a.heart_cx, a.lung_cy + a.lung_ry * 0.55, a.heart_rx, a.heart_ry, edge=0.02)
    spine = canvas.blob(0.5, 0.5, 0.025, 1.0)
    picture = 0.08 + body * (a.tissue - 0.08)
    picture = picture - lungs * (a.tissue - a.lung) + 0.07 * ribs * lungs
    return picture + 0.22 * heart + 0.12 * spine * (1 - lungs)


def render(anatomy: Anatomy, findings: list[str], size: int, rng: np.random.Generator) -> np.ndarray:
    """One grayscale image (uint8, size x size) of a patient with the given findings."""
    for name in findings:
        if name in ANATOMY_CHANGES:
            anatomy = ANATOMY_CHANGES[name](anatomy, rng)
    canvas = Canvas(size, shift_u=rng.normal(0, 0.015), shift_v=rng.normal(0, 0.015))
    scene = Scene(anatomy, canvas, rng)
    picture = _chest(scene)
    for name in findings:
        if name in TRACES:
            picture = picture + TRACE_CONTRAST * TRACES[name](scene)
    exposure = picture * (1 + rng.normal(0, 0.06)) + rng.normal(0, 0.03)
    noisy = exposure + rng.normal(0, rng.uniform(0.03, 0.06), exposure.shape)
    return np.clip(noisy * 255, 0, 255).astype(np.uint8)
