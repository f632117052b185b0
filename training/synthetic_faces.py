"""A procedural facial-expression dataset with known label noise, for the demo, the tests and the cleaning benchmark.

numpy + Pillow only (no Django, no torch). `make_synthetic_faces(out, n=...)` writes
    OUT/images/00000.png ...   RGB, size x size
    OUT/labels.csv             path,label,split             the labels a dataset owner would have: noisy
    OUT/truth.csv              path,true_label,intensity,noisy,duplicate_group,outlier,duplicate_kind   only
                               benchmarks and tests read it (+ ambiguity,agreement,annotator_labels under the
                               annotator noise model)
    OUT/preview.png            (preview=True) 8 rows, one per true emotion, of 12 faces, strongest first

A face is an identity, an expression and a capture (training/face_drawing.py draws it). The expression is a vector
of action units: an emotion's prototype (PROTOTYPES) times an intensity in [0, 1], sometimes blended with a second
emotion, on top of the person's resting face. Confusable emotions share most action units (surprise/fear,
disgust/anger, happy/contempt; sad/neutral at low intensity).

Two noise models choose the wrong labels; either way `noise` is exactly the share of wrong labels in train + val.
`uniform` (the first, and the default): the wrong faces are a uniform draw, independent of the face, and the wrong
label is mostly the confusable partner. `annotators`: simulated annotators look at each face's action units and
name the emotion they read there (annotator_plan below), so wrong labels fall on weak, blended and resting-face
expressions and name the class the face resembles.

Known trouble beyond wrong labels (both off by default): `duplicates` (a share of n) are near-duplicates of
another face, made the ways real pipelines make copies (DUPLICATE_KINDS: re-captured with small capture changes,
re-encoded as JPEG, blurred, mirrored, or re-cropped with other margins), landing in any split, so some share their
original's split and some do not (train/test leaks among them); truth.csv's duplicate_group is the original's index
on the original and on each copy, empty elsewhere, and duplicate_kind says how each copy was made.
`nonfaces` (a share of n) are not faces at all (noise textures, scenery-like blobs, blank frames): outlier 1. A
non-face has no true emotion: its true_label is the label it was given, and it is never counted as noisy.

Determinism: the dataset's plan (true labels, splits, which labels are wrong) comes from SeedSequence(seed); face i
draws everything else from SeedSequence(seed, spawn_key=(i,)), its own stream, so the order or the number of
processes that render the faces cannot change a byte.
"""
import csv
import io
import struct
import time
import zlib
from dataclasses import dataclass, fields, replace
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from training.face_drawing import (
    AU,
    AUS,
    BACKGROUNDS,
    HAIR_STYLES,
    Capture,
    Identity,
    mix,
    render,
)
from training.labels import CLASSES, CODE

SPLITS = ("train", "val", "test")
NOISE_MODELS = ("uniform", "annotators")
PREVIEW_COLUMNS = 12
PREVIEW_LABEL_WIDTH = 64  # px left of each preview row for the emotion's name
PNG_COMPRESS_LEVEL = 1  # zlib level, fixed so that the bytes are; 1 is the fastest and barely larger on noisy faces

# The class a wrong label most often names (PARTNER_SHARE of them): what a hurried annotator confuses it with.
PARTNER_SHARE = 0.7
PARTNER = {"fear": "surprise", "surprise": "fear", "disgust": "anger", "anger": "disgust",
           "contempt": "happy", "happy": "contempt", "sad": "neutral", "neutral": "sad"}


def _prototype(**units):
    vector = np.zeros(len(AUS))
    for name, value in units.items():
        vector[AU[name]] = value
    return vector


# EMFACS-style prototypes at full intensity. Partners differ in one or two units: fear is surprise plus lowered,
# inner-raised brows and stretched lips; anger is disgust with pressed lips instead of a raised upper lip;
# contempt is a weak smile pulled to one side, without the raised cheeks.
PROTOTYPES = {
    "neutral": _prototype(),
    "happy": _prototype(lip_corner=1.0, cheek_raise=0.8, mouth_open=0.3, eye_open=-0.15),
    "sad": _prototype(inner_brow_raise=1.0, brow_lower=0.3, lip_corner=-0.8, eye_open=-0.3),
    "surprise": _prototype(brow_raise=1.0, eye_open=0.9, mouth_open=0.9),
    "fear": _prototype(brow_raise=0.7, inner_brow_raise=0.5, brow_lower=0.5, eye_open=0.9, mouth_open=0.6,
                       lip_stretch=0.9),
    "disgust": _prototype(upper_lip_raise=1.0, brow_lower=0.6, eye_open=-0.3, lip_corner=-0.3, cheek_raise=0.3),
    "anger": _prototype(brow_lower=1.0, eye_open=-0.3, lip_press=0.9, upper_lip_raise=0.25),
    "contempt": _prototype(lip_corner_one_side=1.0, lip_corner=0.3, cheek_raise=0.15, eye_open=-0.1),
}
# Units a person's resting face shifts: some people look a little sad, cross or amused when they are not.
RESTING = np.array([AU[name] for name in ("brow_raise", "brow_lower", "inner_brow_raise", "eye_open", "lip_corner")])


@dataclass(frozen=True)
class Knobs:
    """What --difficulty turns; knobs(d) interpolates between EASY (d=0) and HARD (d=1)."""

    intensity_mean: float  # intensity ~ Beta with this mean: low puts faces close to neutral
    intensity_concentration: float  # Beta's a + b: low spreads intensities out
    blend_share: float  # share of faces that mix in a second emotion
    blend_weight: float  # the second emotion's weight is uniform up to this share of the first's (1: as strong)
    resting: float  # s.d. of the resting-face offsets
    idiosyncrasy: float  # s.d. of the per-person gain on each action unit of the expression
    identity: float  # 0-1: how far identity features spread around the average face
    shift: float  # s.d. of the face centre's shift, as a share of the image
    zoom: float  # face size varies by up to this share either way
    rotation: float  # s.d. of the in-plane rotation, degrees
    light: float  # strongest lighting gradient
    degraded_share: float  # share of faces captured small and upscaled (blurred); half as many get JPEG artefacts
    noise: float  # strongest sensor-noise s.d., 0-255 scale


EASY = Knobs(intensity_mean=0.8, intensity_concentration=6.0, blend_share=0.0, blend_weight=0.5, resting=0.03,
             idiosyncrasy=0.05, identity=0.3, shift=0.01, zoom=0.03, rotation=1.0, light=0.1, degraded_share=0.0,
             noise=2.0)
HARD = Knobs(intensity_mean=0.4, intensity_concentration=2.5, blend_share=0.6, blend_weight=0.85, resting=0.32,
             idiosyncrasy=0.45, identity=1.0, shift=0.05, zoom=0.15, rotation=6.0, light=0.6, degraded_share=0.5,
             noise=10.0)
DEFAULT_DIFFICULTY = 0.6


def knobs(difficulty):
    if not 0.0 <= difficulty <= 1.0:
        raise ValueError(f"difficulty must be in [0, 1], not {difficulty}")
    return Knobs(**{f.name: getattr(EASY, f.name) + difficulty * (getattr(HARD, f.name) - getattr(EASY, f.name))
                    for f in fields(Knobs)})


# ---------------------------------------------------------------------------------------------------------------
# One face: sampled from its own RNG, then drawn.

SKIN = np.array([(255, 224, 196), (234, 192, 160), (205, 150, 115), (160, 110, 80), (110, 72, 50), (75, 50, 38)])
HAIR = np.array([(25, 20, 18), (60, 40, 28), (110, 75, 45), (200, 160, 95), (150, 70, 35), (170, 170, 165)])


def _colour(rng, palette, jitter):
    """A colour anywhere along the palette's ramp, jittered."""
    at = rng.random() * (len(palette) - 1)
    low = int(at)
    rgb = palette[low] + (at - low) * (palette[min(low + 1, len(palette) - 1)] - palette[low])
    return tuple(min(255, max(0, int(v))) for v in rgb + rng.normal(0, jitter, 3))


def sample_identity(rng, k):
    spread = k.identity

    def around(mid, half):
        return mid + half * spread * (2 * rng.random() - 1)

    skin = _colour(rng, SKIN, 8)
    u = rng.random()
    facial_hair = "moustache" if u < 0.1 * spread else "beard" if u < 0.2 * spread else "none"
    return Identity(
        face_width=around(0.76, 0.1), jaw_width=around(0.85, 0.13), skin=skin,
        hair_style=HAIR_STYLES[rng.integers(len(HAIR_STYLES))], hair=_colour(rng, HAIR, 10),
        hairline=around(-0.62, 0.14), eye_spacing=around(0.32, 0.05), eye_size=around(0.135, 0.035),
        eye_height=around(-0.1, 0.06), iris=tuple(int(v) for v in rng.integers(30, 120, 3)),
        brow_thickness=around(0.06, 0.03), brow_arch=around(0.04, 0.03), nose_length=around(0.3, 0.07),
        nose_width=around(0.11, 0.04), mouth_y=around(0.56, 0.06), mouth_width=around(0.24, 0.06),
        lip_thickness=around(0.06, 0.03), lips=tuple(int(v) for v in np.array(skin) * (0.75, 0.5, 0.5) + (40, 5, 10)),
        glasses=bool(rng.random() < 0.2 * spread), facial_hair=facial_hair,
        clothes=tuple(int(v) for v in rng.integers(20, 235, 3)), smile_side=1 if rng.random() < 0.5 else -1,
    )


def _intensity(rng, k):
    a = k.intensity_mean * k.intensity_concentration
    return float(rng.beta(a, k.intensity_concentration - a))


def sample_expression(rng, label, k):
    """(action-unit vector, intensity). Intensity is 0 for neutral; in a blend the second emotion weighs less."""
    intensity = 0.0 if label == "neutral" else _intensity(rng, k)
    aus = intensity * PROTOTYPES[label]
    if rng.random() < k.blend_share:
        others = [c for c in CLASSES if c not in ("neutral", label)]
        partner = rng.random() < 0.5 and PARTNER[label] != "neutral"  # half the blends mix in the confusable class
        second = PARTNER[label] if partner else others[rng.integers(len(others))]
        # A neutral face's trace of another emotion stays weaker than the weakest typical expression.
        strength = intensity if label != "neutral" else _intensity(rng, k) * 0.5
        aus = aus + strength * k.blend_weight * rng.random() * PROTOTYPES[second]
    aus = aus * np.clip(rng.normal(1.0, k.idiosyncrasy, len(AUS)), 0.3, None)
    aus[RESTING] += rng.normal(0.0, k.resting, len(RESTING))
    return np.clip(aus, -1.0, 1.0), intensity


def _muted(rng):
    """A room's colour: a grey with a tint, rarely saturated."""
    grey = rng.uniform(40, 220)
    return tuple(min(255, max(0, int(v))) for v in grey + rng.normal(0, 45 * rng.random(), 3))


def _clipped_normal(rng, sd):
    return min(2.5 * sd, max(-2.5 * sd, float(rng.normal(0, sd))))


def sample_capture(rng, k):
    background = BACKGROUNDS[rng.integers(len(BACKGROUNDS))]
    colours = (_muted(rng), _muted(rng))
    clutter = []
    for _ in range(rng.integers(3, 8) if background == "cluttered" else 0):
        (x0, x1), (y0, y1) = np.sort(rng.random(2)), np.sort(rng.random(2))
        kind = "ellipse" if rng.random() < 0.5 else "rectangle"
        clutter.append((kind, x0, y0, x1, y1, _muted(rng)))
    degraded = k.degraded_share
    return Capture(
        centre=(0.5 + _clipped_normal(rng, k.shift), 0.53 + _clipped_normal(rng, k.shift)),
        scale=0.36 * (1 + k.zoom * (2 * rng.random() - 1)),
        angle=_clipped_normal(rng, k.rotation),
        background=background, background_colours=colours, clutter=tuple(clutter),
        light_angle=float(rng.random() * 2 * np.pi), light=float(rng.random() * k.light),
        colour_gain=tuple(rng.normal(1.0, 0.06 * k.identity, 3)), contrast=float(rng.uniform(0.7, 1.15)),
        brightness=float(rng.normal(0, 12 * k.identity)),
        resolution=float(rng.uniform(0.45, 0.85)) if rng.random() < degraded else 1.0,
        noise=float(rng.random() * k.noise), noise_window=tuple(rng.random(2)),
        jpeg_quality=int(rng.integers(15, 60)) if rng.random() < degraded / 2 else 0,
    )


def face(seed, index, label, size, k):
    """Face `index` of the dataset made with `seed`: ((size, size, 3) uint8, intensity)."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))
    identity = sample_identity(rng, k)
    aus, intensity = sample_expression(rng, label, k)
    capture = sample_capture(rng, k)
    return render(identity, aus, capture, size), intensity


def recapture(rng, capture):
    """The same scene captured again a moment later: a slight shift, zoom, tilt and exposure change, fresh sensor
    noise, and half the time a JPEG round trip."""
    return replace(
        capture,
        centre=(capture.centre[0] + rng.uniform(-0.02, 0.02), capture.centre[1] + rng.uniform(-0.02, 0.02)),
        scale=capture.scale * rng.uniform(0.97, 1.03), angle=capture.angle + rng.uniform(-1.5, 1.5),
        brightness=capture.brightness + rng.uniform(-10, 10), contrast=capture.contrast * rng.uniform(0.96, 1.04),
        noise=max(capture.noise, 1.0) * rng.uniform(0.8, 1.5), noise_window=tuple(rng.random(2)),
        jpeg_quality=capture.jpeg_quality or (int(rng.integers(50, 90)) if rng.random() < 0.5 else 0),
    )


# How a copy was made, the way real pipelines make them (truth.csv's duplicate_kind):
# - recapture: the scene captured again (slight shift, zoom, tilt, exposure, fresh noise, sometimes JPEG);
# - jpeg: the original's pixels re-encoded as JPEG at quality 25-70;
# - blur: the original's pixels blurred (Gaussian, radius 0.6-1.4 px at 64 px, scaled with the size);
# - mirror: the original's pixels flipped left to right (an augmentation pipeline that saved its flips);
# - crop: the original cropped by 2-8 % of the side on each side, each side drawn on its own, and resized back (a
#   face detector cropping the same photo with other margins).
DUPLICATE_KINDS = ("recapture", "jpeg", "blur", "mirror", "crop")


def duplicate_kind(seed, index, kinds=DUPLICATE_KINDS):
    """Which of `kinds` copy `index` is: drawn from a stream of its own, so the rest of its pixels do not depend on
    which kinds were asked for."""
    return kinds[int(np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index, 2))).integers(len(kinds)))]


def near_duplicate(seed, source, index, label, size, k, kind="recapture"):
    """Face `source` of the dataset made with `seed` (whose true label is `label`), copied as `kind`
    (DUPLICATE_KINDS), with face `index`'s own stream choosing the changes: ((size, size, 3) uint8, intensity)."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(source,)))
    identity = sample_identity(rng, k)
    aus, intensity = sample_expression(rng, label, k)
    capture = sample_capture(rng, k)
    own = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))
    if kind == "recapture":
        return render(identity, aus, recapture(own, capture), size), intensity
    original = Image.fromarray(render(identity, aus, capture, size))
    if kind == "jpeg":
        buffer = io.BytesIO()
        original.save(buffer, "JPEG", quality=int(own.integers(25, 71)))
        copy = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    elif kind == "blur":
        copy = original.filter(ImageFilter.GaussianBlur(own.uniform(0.6, 1.4) * size / 64))
    elif kind == "mirror":
        copy = original.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    elif kind == "crop":
        left, top, right, bottom = own.uniform(0.02, 0.08, 4) * size
        copy = original.crop((left, top, size - right, size - bottom)).resize((size, size), Image.BICUBIC)
    else:
        raise ValueError(f"unknown duplicate kind {kind!r} (known: {', '.join(DUPLICATE_KINDS)})")
    return np.asarray(copy, dtype=np.uint8), intensity


NON_FACES = ("noise", "scenery", "blank")


def non_face(seed, index, size):
    """Image `index` as something that is not a face: a smooth noise texture, a scenery-like picture (sky,
    ground, a few blobs) or a blank frame, each with a little sensor noise. (size, size, 3) uint8."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))
    kind = NON_FACES[rng.integers(len(NON_FACES))]
    if kind == "noise":
        cells = int(rng.integers(3, 12))
        coarse = Image.fromarray(rng.integers(0, 256, (cells, cells, 3), dtype=np.uint8), "RGB")
        image = coarse.resize((size, size), Image.BICUBIC)
    elif kind == "scenery":
        image = Image.new("RGB", (size, size), _muted(rng))
        draw = ImageDraw.Draw(image)
        horizon = int(size * rng.uniform(0.35, 0.75))
        sky, ground = _muted(rng), _muted(rng)
        for y in range(horizon):  # a sky that darkens or lightens towards the horizon
            draw.line([(0, y), (size, y)], fill=mix(sky, (230, 230, 240), y / max(horizon, 1) * 0.6))
        draw.rectangle([0, horizon, size, size], fill=ground)
        for _ in range(rng.integers(2, 7)):
            x, w, h = rng.uniform(0, size), rng.uniform(0.05, 0.3) * size, rng.uniform(0.1, 0.5) * size
            box = [x - w / 2, horizon - h, x + w / 2, horizon + rng.uniform(0, 0.1) * size]
            (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=_muted(rng))
    else:
        image = Image.new("RGB", (size, size), _muted(rng))
    pixels = np.asarray(image, dtype=np.float32) + rng.normal(0, rng.uniform(1, 6), (size, size, 3))
    return np.clip(pixels, 0, 255).astype(np.uint8), 0.0


# ---------------------------------------------------------------------------------------------------------------
# The dataset: plan (labels, splits, noise), faces, files.


def _true_and_split(rng, n, test_fraction, val_fraction, class_prior):
    prior = np.full(len(CLASSES), 1.0 / len(CLASSES)) if class_prior is None else np.asarray(class_prior, float)
    counts = np.floor(prior / prior.sum() * n).astype(int)
    counts[np.argsort(-(prior / prior.sum() * n - counts), kind="stable")[: n - counts.sum()]] += 1
    true = rng.permutation(np.repeat(np.arange(len(CLASSES)), counts))
    split = np.zeros(n, dtype=int)  # 0 train, 1 val, 2 test
    for code in range(len(CLASSES)):
        members = rng.permutation(np.flatnonzero(true == code))
        n_test, n_val = round(test_fraction * len(members)), round(val_fraction * len(members))
        split[members[:n_test]] = 2
        split[members[n_test : n_test + n_val]] = 1
    return true, split


def plan(n, *, seed, noise, test_fraction=0.15, val_fraction=0.10, class_prior=None):
    """Return (true, split, given) code arrays of length n: classes in proportion to class_prior (uniform by
    default), splits stratified by true class, and exactly round(noise * n_trainval) wrong given labels in
    train + val, PARTNER_SHARE of them the confusable partner and the rest uniform over the other six classes
    (the uniform noise model)."""
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    true, split = _true_and_split(rng, n, test_fraction, val_fraction, class_prior)
    trainval = np.flatnonzero(split < 2)
    wrong = np.sort(rng.choice(trainval, size=round(noise * len(trainval)), replace=False))
    given = true.copy()
    for i in wrong:
        partner = CODE[PARTNER[CLASSES[true[i]]]]
        others = [c for c in range(len(CLASSES)) if c not in (true[i], partner)]
        given[i] = partner if rng.random() < PARTNER_SHARE else others[rng.integers(len(others))]
    return true, split, given


# ---------------------------------------------------------------------------------------------------------------
# The annotator noise model.
#
# An annotator perceives a face's action units with some error and names the emotion whose prototype best explains
# what they saw: for each emotion c the best intensity t in [0, 1] of its prototype p_c, scored by how much of the
# squared action-unit vector it explains (2 t <a, p_c> - t^2 |p_c|^2); "neutral" explains nothing but wins unless an
# emotion explains more than a fixed amount (that of a prototype at NEUTRAL_BELOW intensity). Perception errors are
# Gaussian, PERCEPTION_WEIGHT times larger on the subtle units a resting face also moves (brows, lids, lip corners)
# than on the salient ones (an open mouth, a raised upper lip): so a neutral face that looks a little sad, cross,
# amused or contemptuous is read so, and weak expressions are read as neutral. The perception noise's scale sigma
# is set (by bisection) so that the share of train + val faces whose annotators' plurality is wrong equals
# `noise` in expectation; exactly round(noise * n_trainval) faces then get a wrong plurality, drawn with weight
# their own chance of one, and each face's votes are drawn from its simulated annotators given that outcome.

NEUTRAL_BELOW = 0.3  # an emotion at less than this intensity of its prototype reads as neutral to an error-free eye
SUBTLE_UNITS = ("brow_raise", "brow_lower", "inner_brow_raise", "eye_open", "lip_corner", "lip_corner_one_side")
PERCEPTION_WEIGHT = 2.0  # perception error on a subtle unit against a salient one
ANNOTATORS = 3  # annotators a face under the annotator model; the given label is their plurality
ANNOTATOR_DRAWS = 64  # simulated panels a face, from which its chance of a wrong plurality and its votes come
_PROTOTYPES = np.array([PROTOTYPES[c] for c in CLASSES])
_NORMS = np.where((_PROTOTYPES ** 2).sum(1) > 0, (_PROTOTYPES ** 2).sum(1), 1.0)
_NEUTRAL_SCORE = NEUTRAL_BELOW ** 2 * float(_NORMS[1:].mean())
_PERCEPTION = np.array([PERCEPTION_WEIGHT if name in SUBTLE_UNITS else 1.0 for name in AUS])
_PERCEPTION = _PERCEPTION / np.sqrt((_PERCEPTION ** 2).mean())  # sigma is the root-mean-square error per unit


def expressions(seed, true, k):
    """(action units (n, len(AUS)), intensities) of each face of the dataset made with `seed`, as face() draws
    them from the face's own stream (no drawing)."""
    aus, intensity = np.zeros((len(true), len(AUS))), np.zeros(len(true))
    for i, code in enumerate(true):
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(i,)))
        sample_identity(rng, k)
        aus[i], intensity[i] = sample_expression(rng, CLASSES[code], k)
    return aus, intensity


def read_expression(aus):
    """The class an annotator names for action units `aus` (..., len(AUS)), as they perceive them."""
    # einsum without optimize runs numpy's own loops, never BLAS, whose summation order (and so the last bit, and
    # the argmax at a tie) can depend on the machine and its threads: the same seed must give the same labels.
    projection = np.einsum("...k,ck->...c", aus, _PROTOTYPES)
    t = np.clip(projection / _NORMS, 0.0, 1.0)
    explained = 2 * t * projection - t ** 2 * _NORMS
    explained[..., 0] = _NEUTRAL_SCORE
    return explained.argmax(-1)


def plurality(votes):
    """The most-named class of each row of votes (..., K); a tie goes to the first vote among the tied."""
    counts = (votes[..., :, None] == votes[..., None, :]).sum(-1)
    first = (counts == counts.max(-1, keepdims=True)).argmax(-1)
    return np.take_along_axis(votes, first[..., None], -1)[..., 0]


def _panels(aus, errors, sigma):
    """(draws, n, K) votes of every simulated panel at perception noise sigma."""
    return read_expression(aus[None, :, None, :] + sigma * errors * _PERCEPTION)


def annotator_plan(true, split, aus, *, seed, noise, annotators=ANNOTATORS, draws=ANNOTATOR_DRAWS):
    """The annotator model's labels: (given, votes (n, annotators), ambiguity, sigma). ambiguity is a face's chance
    that one annotator names another class than its true one; the test split's faces get right pluralities."""
    n = len(true)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0, 2)))
    errors = rng.standard_normal((draws, n, annotators, len(AUS))).astype(np.float32)
    trainval = split < 2
    target = round(noise * int(trainval.sum()))

    def wrong_share(sigma):
        return float((plurality(_panels(aus, errors, sigma)) != true)[:, trainval].mean())

    low, high = 0.0, 4.0
    for _ in range(24):  # wrong_share grows with sigma (common draws make it smooth enough to bisect)
        mid = (low + high) / 2
        low, high = (mid, high) if wrong_share(mid) < noise else (low, mid)
    sigma = (low + high) / 2
    panels = _panels(aus, errors, sigma)
    wrong = plurality(panels) != true  # (draws, n)
    ambiguity = (panels != true[None, :, None]).mean((0, 2))
    chance = np.where(trainval, wrong.mean(0), 0.0)
    weights = chance + 1e-9 * trainval  # every train + val face can be chosen, the likeliest most often
    chosen = np.zeros(n, bool)
    chosen[rng.choice(n, size=target, replace=False, p=weights / weights.sum())] = True
    votes = np.empty((n, annotators), int)
    for i in range(n):
        fits = np.flatnonzero(wrong[:, i] == chosen[i])
        if len(fits):
            votes[i] = panels[fits[rng.integers(len(fits))], i]
        else:  # no simulated panel gave the needed outcome: all annotators name the face's likeliest other class
            if chosen[i]:
                named = np.bincount(panels[:, i].ravel(), minlength=len(CLASSES))
                named[true[i]] = -1
                votes[i] = named.argmax() if named.max() > 0 else CODE[PARTNER[CLASSES[true[i]]]]
            else:
                votes[i] = true[i]
    return plurality(votes), votes, ambiguity, sigma


NONFACE = -1  # a source that says "not a face" (_render_chunk)


def plan_trouble(n, true, split, given, *, seed, duplicates=0.0, nonfaces=0.0):
    """Choose the near-duplicates and non-faces: (sources, true, given), with sources[i] None for a face of its
    own, NONFACE for a non-face and j for a copy of face j. From a stream no face uses, so the plan of the faces
    themselves is the same with or without them. A copy carries its original's true label and the label its
    original was given (a copied file keeps its label), except that the test split stays free of wrong labels; a
    non-face's true label is the label it was given."""
    sources = [None] * n
    n_out, n_dup = round(nonfaces * n), round(duplicates * n)
    if not (n_out or n_dup):
        return sources, true, given
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0, 1)))
    order = rng.permutation(n)
    originals = order[n_out + n_dup:]
    true, given = true.copy(), given.copy()
    for i in order[:n_out]:
        sources[i] = NONFACE
        true[i] = given[i]
    for i, j in zip(order[n_out : n_out + n_dup], rng.choice(originals, size=n_dup, replace=True)):
        sources[i] = int(j)
        true[i] = true[j]
        given[i] = true[j] if 2 in (split[i], split[j]) else given[j]
    return sources, true, given


def png_bytes(pixels):
    """An 8-bit RGB PNG of a (H, W, 3) uint8 array, every row with the 'Up' filter.

    Written here rather than by Pillow because Pillow tries every filter on every row, which made saving cost more
    than drawing a face; 'Up' alone compresses these faces as well. The bytes depend only on the pixels (and zlib).
    """
    h, w, _ = pixels.shape
    rows = pixels.reshape(h, w * 3)
    filtered = np.empty((h, 1 + w * 3), np.uint8)
    filtered[:, 0] = 2  # filter type Up: each byte minus the one above it, modulo 256
    filtered[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)  # 8 bits, truecolour, deflate, no interlace
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(filtered.tobytes(), PNG_COMPRESS_LEVEL)) + chunk(b"IEND", b""))


def _render_chunk(job):
    """Render and write faces start, start + 1, ...; top-level so that worker processes can run it."""
    out, seed, size, k, start, names, true, *more = job
    sources = more[0] if more else [None] * len(names)
    kinds = more[1] if len(more) > 1 else DUPLICATE_KINDS
    intensities = []
    for index, (name, code, source) in enumerate(zip(names, true, sources), start=start):
        if source is None:
            pixels, intensity = face(seed, index, CLASSES[code], size, k)
        elif source == NONFACE:
            pixels, intensity = non_face(seed, index, size)
        else:
            pixels, intensity = near_duplicate(seed, source, index, CLASSES[code], size, k,
                                               duplicate_kind(seed, index, kinds))
        (out / "images" / name).write_bytes(png_bytes(pixels))
        intensities.append(intensity)
    return intensities


def make_synthetic_faces(out, *, n, size=64, noise=0.2, seed=0, difficulty=DEFAULT_DIFFICULTY, preview=False,
                         test_fraction=0.15, val_fraction=0.10, class_prior=None, workers=1, chunk=250,
                         duplicates=0.0, nonfaces=0.0, noise_model="uniform", annotators=ANNOTATORS,
                         duplicate_kinds=DUPLICATE_KINDS):
    """Write the dataset under `out` (see the module docstring); return a summary dict. Same arguments, same
    bytes, whatever `workers` is. labels.csv is written last, so its presence means the dataset is complete."""
    if noise_model not in NOISE_MODELS:
        raise ValueError(f"noise model must be one of {', '.join(NOISE_MODELS)}, not {noise_model!r}")
    if noise_model == "annotators" and not 1 <= annotators <= 15:
        raise ValueError(f"annotators must be 1-15 (simulated annotators a face), not {annotators}")
    duplicate_kinds = tuple(duplicate_kinds)
    unknown = [kind for kind in duplicate_kinds if kind not in DUPLICATE_KINDS]
    if unknown or not duplicate_kinds:
        raise ValueError(f"unknown duplicate kind {unknown[0]!r} (known: {', '.join(DUPLICATE_KINDS)})" if unknown
                         else f"give at least one duplicate kind ({', '.join(DUPLICATE_KINDS)})")
    if n < 1 or not 16 <= size <= 512 or not 0.0 <= noise <= 1.0:
        raise ValueError(f"need n >= 1, 16 <= size <= 512 and 0 <= noise <= 1 (got n={n}, size={size}, noise={noise})")
    if not (0.0 <= duplicates < 1 and 0.0 <= nonfaces < 1 and round(duplicates * n) + round(nonfaces * n) < n):
        raise ValueError(f"need 0 <= duplicates, 0 <= nonfaces and at least one original face among the n={n} "
                         f"(got duplicates={duplicates}, nonfaces={nonfaces})")
    k = knobs(difficulty)
    started = time.perf_counter()
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    true, split, given = plan(n, seed=seed, noise=noise, test_fraction=test_fraction, val_fraction=val_fraction,
                              class_prior=class_prior)
    panel = None
    if noise_model == "annotators":  # the same faces (true labels, splits, pixels); other given labels
        aus, _ = expressions(seed, true, k)
        given, votes, ambiguity, sigma = annotator_plan(true, split, aus, seed=seed, noise=noise,
                                                        annotators=annotators)
        panel = {"votes": votes, "ambiguity": ambiguity, "sigma": sigma}
    sources, true, given = plan_trouble(n, true, split, given, seed=seed, duplicates=duplicates, nonfaces=nonfaces)
    names = [f"{i:0{max(5, len(str(n - 1)))}d}.png" for i in range(n)]
    jobs = [(out, seed, size, k, a, names[a : a + chunk], true[a : a + chunk], sources[a : a + chunk],
             duplicate_kinds) for a in range(0, n, chunk)]
    if workers > 1:
        # spawn, not fork: the caller may be a threaded process (a Celery worker, a heartbeat thread).
        with get_context("spawn").Pool(workers) as pool:
            intensities = [x for part in pool.map(_render_chunk, jobs) for x in part]
    else:
        intensities = [x for job in jobs for x in _render_chunk(job)]

    paths = [f"images/{name}" for name in names]
    with open(out / "truth.csv", "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        # Columns are only ever added at the end (readers go by name): duplicate_group, outlier and duplicate_kind
        # came later, and the annotator model's columns follow.
        writer.writerow(["path", "true_label", "intensity", "noisy", "duplicate_group", "outlier", "duplicate_kind"]
                        + (["ambiguity", "agreement", "annotator_labels"] if panel else []))
        group = {j: j for j in sources if j is not None and j != NONFACE}
        group.update({i: j for i, j in enumerate(sources) if j is not None and j != NONFACE})
        for i, (path, t, g, x) in enumerate(zip(paths, true, given, intensities)):
            copy = sources[i] is not None and sources[i] != NONFACE
            row = [path, CLASSES[t], f"{x:.3f}", int(t != g), group.get(i, ""), int(sources[i] == NONFACE),
                   duplicate_kind(seed, i, duplicate_kinds) if copy else ""]
            if panel:
                row += _panel_columns(panel, i, sources[i])
            writer.writerow(row)
    if preview:
        write_preview(out, paths, true, intensities, size)
    with open(out / "labels.csv", "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["path", "label", "split"])
        for path, g, s in zip(paths, given, split):
            writer.writerow([path, CLASSES[g], SPLITS[s]])

    noisy = true != given
    n_trainval = int((split < 2).sum())
    seconds = time.perf_counter() - started
    extra = {} if panel is None else {"annotators": annotators, **panel_figures(panel, true, split, intensities,
                                                                                   sources)}
    return {
        "noise_model": noise_model, **extra,
        "out": str(out), "n": n, "size": size, "seed": seed, "difficulty": difficulty,
        "per_class": {c: int((true == i).sum()) for i, c in enumerate(CLASSES)},
        "per_split": {s: int((split == i).sum()) for i, s in enumerate(SPLITS)},
        "noisy": int(noisy.sum()),
        "noise_rate": float(noisy.sum() / n_trainval) if n_trainval else 0.0,
        "noisy_to_partner": float(np.mean([given[i] == CODE[PARTNER[CLASSES[true[i]]]] for i in np.flatnonzero(noisy)]))
        if noisy.any() else 0.0,
        "mean_intensity": float(np.mean([x for x, t in zip(intensities, true) if CLASSES[t] != "neutral"] or [0.0])),
        "seconds": round(seconds, 3), "faces_per_second": round(n / seconds, 1),
        "duplicates": sum(j is not None and j != NONFACE for j in sources),
        "duplicate_kinds": {kind: sum(j is not None and j != NONFACE and duplicate_kind(seed, i, duplicate_kinds) == kind
                                      for i, j in enumerate(sources)) for kind in duplicate_kinds},
        "duplicate_groups": len({j for j in sources if j is not None and j != NONFACE}),
        "cross_split_duplicates": int(sum(j is not None and j != NONFACE and split[i] != split[j]
                                          for i, j in enumerate(sources))),
        "test_leaks": int(sum(j is not None and j != NONFACE and 2 in (split[i], split[j]) and split[i] != split[j]
                              for i, j in enumerate(sources))),
        "nonfaces": sum(j == NONFACE for j in sources),
    }


def _panel_columns(panel, i, source):
    """truth.csv's ambiguity, agreement and annotator_labels of face i: its own panel's, a near-duplicate's
    ambiguity that of its original (its label is its original's, not a new annotation), nothing for a non-face."""
    if source == NONFACE:
        return ["", "", ""]
    if source is not None:
        return [f"{panel['ambiguity'][source]:.3f}", "", ""]
    votes = panel["votes"][i]
    given = plurality(votes[None])[0]
    return [f"{panel['ambiguity'][i]:.3f}", f"{float((votes == given).mean()):.3f}",
            ";".join(CLASSES[v] for v in votes)]


def panel_figures(panel, true, split, intensities, sources):
    """What the simulated annotators do, over the faces of their own (not near-duplicates or non-faces): the
    perception noise, one annotator's accuracy against the truth and two annotators' agreement (each face's chance,
    averaged: comparable with AffectNet's and FER2013's published figures), the panel's agreement with its
    plurality, one annotator's error rate by intensity band, and where each true class's single-annotator errors go."""
    own = np.array([s is None for s in sources])
    votes, ambiguity = panel["votes"][own], panel["ambiguity"][own]
    t, x = true[own], np.asarray(intensities)[own]
    same = (votes[:, :, None] == votes[:, None, :]).mean((1, 2)) if votes.shape[1] > 1 else None
    pairs = votes.shape[1] * (votes.shape[1] - 1)
    agree_pairs = None if same is None else float(((same * votes.shape[1] ** 2 - votes.shape[1]) / pairs).mean())
    bands = {}
    for lo, hi in ((0.0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.01)):
        m = (x >= lo) & (x < hi) & (t != CODE["neutral"])
        if m.any():
            bands[f"{lo:.2f}-{min(hi, 1.0):.2f}"] = {"faces": int(m.sum()), "error": float(ambiguity[m].mean())}
    confusion = {}
    for code, name in enumerate(CLASSES):
        m = t == code
        if m.any():
            named = np.bincount(votes[m].ravel(), minlength=len(CLASSES)) / votes[m].size
            confusion[name] = {CLASSES[c]: round(float(v), 3) for c, v in enumerate(named)}
    return {
        "perception_sigma": round(float(panel["sigma"]), 4),
        "one_annotator_accuracy": float(1 - ambiguity.mean()),
        "two_annotator_agreement": agree_pairs,
        "agreement_with_plurality": float((votes == plurality(votes)[:, None]).mean()),
        "neutral_error": float(ambiguity[t == CODE["neutral"]].mean()) if (t == CODE["neutral"]).any() else None,
        "error_by_intensity": bands,
        "votes_by_true_class": confusion,
    }


def write_preview(out, paths, true, intensities, size):
    """OUT/preview.png: a row per true emotion, labelled, of its first PREVIEW_COLUMNS faces, strongest first."""
    sheet = Image.new("RGB", (PREVIEW_LABEL_WIDTH + PREVIEW_COLUMNS * size, len(CLASSES) * size), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for row, name in enumerate(CLASSES):
        draw.text((4, row * size + size // 2 - 6), name, fill=(0, 0, 0), font=font)
        members = [i for i in range(len(paths)) if true[i] == row][:PREVIEW_COLUMNS]
        members.sort(key=lambda i: -intensities[i])
        for column, i in enumerate(members):
            with Image.open(out / paths[i]) as im:
                sheet.paste(im.convert("RGB"), (PREVIEW_LABEL_WIDTH + column * size, row * size))
    sheet.save(out / "preview.png", format="PNG", compress_level=9)
