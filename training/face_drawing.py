"""Draw one synthetic face from its parameters: who (Identity), what expression (action units) and how it was
captured (Capture). numpy + Pillow only; training/synthetic_faces.py samples the parameters.

Every shape is built in *face units* (origin at the centre of the face, y down, face half-height 1) and mapped to
the canvas by one similarity transform (shift, scale, in-plane rotation), so rotating a face costs nothing: shapes
are polygons, never rotated bitmaps. The canvas is drawn at SUPERSAMPLE x the output size and box-reduced, which
anti-aliases the edges; capture effects (lighting, colour, blur, noise, JPEG) are applied at the output size.
"""
import io
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

SUPERSAMPLE = 2

# Action units, in the order of an expression vector. Signed ones go both ways.
AUS = (
    "brow_raise",  # AU1+2: whole brow up
    "brow_lower",  # AU4: brows down and drawn together
    "inner_brow_raise",  # AU1 alone: inner ends up (sad, fear)
    "eye_open",  # AU5 upper lid raiser (+) / AU7 lid tightener (-)
    "cheek_raise",  # AU6: lower lid pushed up, crescent eyes
    "lip_corner",  # AU12 pull up (+) / AU15 depress (-)
    "lip_corner_one_side",  # AU12+14 on one side only (contempt)
    "mouth_open",  # AU25-27: lips part, jaw drops
    "upper_lip_raise",  # AU9+10: nose wrinkle, upper lip up
    "lip_press",  # AU23+24: lips thin and tight
    "lip_stretch",  # AU20: mouth pulled wide and flat (fear)
)
AU = {name: i for i, name in enumerate(AUS)}

HAIR_STYLES = ("bald", "short", "bangs", "long", "curly")
BACKGROUNDS = ("plain", "gradient", "cluttered")


@dataclass(frozen=True)
class Identity:
    face_width: float  # half-width of the head oval, in face units
    jaw_width: float  # lower-face width as a share of face_width: pointed (0.7) to square (1.0) chins
    skin: tuple
    hair_style: str
    hair: tuple  # hair colour
    hairline: float  # y of the hairline's centre (-1 is the top of the head)
    eye_spacing: float  # half the distance between the eye centres
    eye_size: float  # half-width of an eye
    eye_height: float  # y of the eye centres
    iris: tuple
    brow_thickness: float
    brow_arch: float
    nose_length: float  # y of the nose tip
    nose_width: float
    mouth_y: float
    mouth_width: float  # half-width at rest
    lip_thickness: float
    lips: tuple
    glasses: bool
    facial_hair: str  # "none", "moustache" or "beard"
    clothes: tuple
    smile_side: int  # -1 or 1: the side a one-sided lip corner pulls


@dataclass(frozen=True)
class Capture:
    centre: tuple  # face centre, as a share of the image size
    scale: float  # face half-height, as a share of the image size
    angle: float  # in-plane rotation, degrees
    background: str
    background_colours: tuple  # two RGB colours
    clutter: tuple  # ((kind, x0, y0, x1, y1, rgb), ...) in image shares, for the "cluttered" background
    light_angle: float  # direction the light comes from, radians
    light: float  # brightness difference across the image, as a share of the brightness
    colour_gain: tuple  # per-channel gain (white balance)
    contrast: float
    brightness: float  # added after contrast, 0-255 scale
    resolution: float  # <1: the face was captured smaller and upscaled (blur); 1: sharp
    noise: float  # sensor-noise standard deviation, 0-255 scale
    noise_window: tuple  # (row, column) of the window taken from the fixed noise field, each in [0, 1)
    jpeg_quality: int  # 0: no JPEG round trip


def _unit_circle(k):
    a = np.linspace(0.0, 2 * np.pi, k, endpoint=False)
    return np.stack([np.cos(a), np.sin(a)], axis=1)


_CIRCLE = {k: _unit_circle(k) for k in (10, 14, 22)}  # (k, 2) points, starting at 3 o'clock, clockwise on screen
_t = np.linspace(0.0, 1.0, 7)[:, None]
_BEZIER = np.hstack([(1 - _t) ** 2, 2 * (1 - _t) * _t, _t**2])  # (7, 3) weights of a quadratic Bezier curve


def ellipse(cx, cy, rx, ry, k=14):
    return np.array((cx, cy)) + np.array((rx, ry)) * _CIRCLE[k]


def curve(a, mid, b):
    """7 points on the quadratic Bezier from a to b that passes through mid at its half-way point."""
    control = (2 * mid[0] - (a[0] + b[0]) / 2, 2 * mid[1] - (a[1] + b[1]) / 2)
    return _BEZIER @ np.array((a, control, b), dtype=float)


def shade(rgb, factor):
    r, g, b = rgb
    return min(255, int(r * factor)), min(255, int(g * factor)), min(255, int(b * factor))


def mix(a, b, share_of_b):
    return tuple(int(x + (y - x) * share_of_b) for x, y in zip(a, b))


class Pen:
    """ImageDraw with the face-to-canvas similarity transform applied to every point."""

    def __init__(self, image, centre, scale, angle_degrees):
        self.draw = ImageDraw.Draw(image)
        a = np.deg2rad(angle_degrees)
        self.transposed = scale * np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])  # rotation, transposed
        self.offset = np.asarray(centre, float)
        self.scale = scale

    def _xy(self, points):
        return (np.asarray(points) @ self.transposed + self.offset).ravel().tolist()

    def fill(self, points, rgb):
        self.draw.polygon(self._xy(points), fill=rgb)

    def line(self, points, rgb, width):
        self.draw.line(self._xy(points), fill=rgb, width=max(1, round(width * self.scale)), joint="curve")

    def outline(self, points, rgb, width):
        self.draw.polygon(self._xy(points), outline=rgb, width=max(1, round(width * self.scale)))


def render(identity, aus, capture, size):
    """The face as a (size, size, 3) uint8 array. aus: the expression vector, ordered as AUS."""
    canvas = size * SUPERSAMPLE
    image = _background(capture, size, canvas)
    pen = Pen(image, (capture.centre[0] * canvas, capture.centre[1] * canvas), capture.scale * canvas, capture.angle)
    _draw_face(pen, identity, dict(zip(AUS, aus)))
    image = image.reduce(SUPERSAMPLE)
    return _capture_effects(image, capture, size)


def _background(capture, size, canvas):
    first, second = capture.background_colours
    if capture.background == "plain":
        return Image.new("RGB", (canvas, canvas), first)
    # Mixed at the output size and enlarged without interpolation: the final box reduction gives the same pixels,
    # for a quarter of the work.
    image = Image.composite(Image.new("RGB", (size, size), first), Image.new("RGB", (size, size), second), _ramp(size))
    image = image.resize((canvas, canvas), Image.NEAREST)
    if capture.background == "cluttered":
        draw = ImageDraw.Draw(image)
        for kind, x0, y0, x1, y1, rgb in capture.clutter:
            box = [x0 * canvas, y0 * canvas, x1 * canvas, y1 * canvas]
            (draw.ellipse if kind == "ellipse" else draw.rectangle)(box, fill=rgb)
    return image


@lru_cache(maxsize=8)
def _ramp(size):
    # A diagonal 0-255 ramp, made once per size: the gradient background mixes its two colours through it.
    x = np.linspace(0, 255, size)
    return Image.fromarray(((x[None, :] + x[:, None]) / 2).astype(np.uint8), "L")


@lru_cache(maxsize=8)
def _grid(size):
    y, x = np.mgrid[-1 : 1 : size * 1j, -1 : 1 : size * 1j]
    return x.astype(np.float32), y.astype(np.float32)


@lru_cache(maxsize=1)
def _noise_bank():
    # One fixed field of unit Gaussian noise; each face takes a window of it at an offset its own RNG chose: a
    # slice instead of 12,288 fresh normals per face (a tenth of the time), and just as deterministic.
    return np.random.default_rng(20261128).standard_normal((512, 512, 3), dtype=np.float32)


def _capture_effects(image, capture, size):
    if capture.resolution < 1.0:
        small = max(8, round(size * capture.resolution))
        image = image.resize((small, small), Image.BILINEAR).resize((size, size), Image.BILINEAR)
    x, y = _grid(size)
    # Lighting gradient, white balance and contrast fold into one gain per pixel and channel and one offset.
    light = (1.0 + capture.light / 2 * (x * np.cos(capture.light_angle) + y * np.sin(capture.light_angle)))
    gain = (light * capture.contrast)[..., None] * np.asarray(capture.colour_gain, np.float32)
    pixels = np.asarray(image, dtype=np.float32) * gain
    pixels += 128.0 * (1.0 - capture.contrast) + capture.brightness
    if capture.noise > 0:
        bank = _noise_bank()
        oy, ox = (int(share * (side - size)) for share, side in zip(capture.noise_window, bank.shape))
        pixels += capture.noise * bank[oy : oy + size, ox : ox + size]
    np.clip(pixels, 0, 255, out=pixels)
    image = Image.fromarray(pixels.astype(np.uint8), "RGB")
    if capture.jpeg_quality:
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=capture.jpeg_quality)
        image = Image.open(buffer).convert("RGB")
    return np.asarray(image)


def _draw_face(pen, who, au):
    skin = who.skin
    mouth_open = au["mouth_open"]
    hair_back = who.hair_style in ("long", "curly")
    if who.hair_style == "long":
        pen.fill(ellipse(0, 0.35, who.face_width * 1.3, 1.35, 22), shade(who.hair, 0.85))
    elif who.hair_style == "curly":
        pen.fill(ellipse(0, -0.2, who.face_width * 1.5, 1.2, 22), shade(who.hair, 0.85))
    pen.fill([(-0.62, 1.45), (-0.3, 0.55), (0.3, 0.55), (0.62, 1.45)], shade(skin, 0.8))  # neck
    pen.fill(ellipse(0, 1.75, 1.7, 0.55, 22), who.clothes)
    for side in (-1, 1):
        pen.fill(ellipse(side * who.face_width * 0.97, who.eye_height + 0.1, 0.1, 0.17, 10), shade(skin, 0.88))
    # Head: a darker full silhouette, then a lighter, slightly smaller face on it, for a little depth.
    jaw_y, jaw_h = 0.28 + 0.07 * mouth_open, 0.72 + 0.09 * mouth_open
    pen.fill(ellipse(0, -0.05, who.face_width, 0.97, 22), shade(skin, 0.9))
    pen.fill(ellipse(0, jaw_y, who.face_width * who.jaw_width, jaw_h, 22), shade(skin, 0.9))
    pen.fill(ellipse(0, -0.08, who.face_width * 0.9, 0.9, 22), skin)
    pen.fill(ellipse(0, jaw_y - 0.03, who.face_width * who.jaw_width * 0.88, jaw_h * 0.94, 22), skin)
    if who.facial_hair == "beard":
        beard = ellipse(0, jaw_y, who.face_width * who.jaw_width, jaw_h, 22)
        pen.fill(beard[beard[:, 1] > who.mouth_y - 0.12], mix(skin, who.hair, 0.55))
    _draw_wrinkles(pen, who, au)
    _draw_nose(pen, who, au)
    _draw_mouth(pen, who, au)
    for side in (-1, 1):
        _draw_eye(pen, who, au, side)
        _draw_brow(pen, who, au, side)
    _draw_hair(pen, who, hair_back)
    if who.glasses:
        frame = (40, 40, 45) if who.hair[0] > 90 else (150, 150, 160)
        for side in (-1, 1):
            pen.outline(ellipse(side * who.eye_spacing, who.eye_height, who.eye_size * 1.55, who.eye_size * 1.15),
                        frame, 0.035)
        inner = who.eye_spacing - who.eye_size * 1.55
        pen.line([(-inner, who.eye_height - 0.02), (inner, who.eye_height - 0.02)], frame, 0.03)


def _fold(skin, strength):
    """The colour of a crease: darker skin, as dark as the action that makes it is strong."""
    return shade(skin, 1.0 - 0.35 * min(1.0, strength))


def _draw_wrinkles(pen, who, au):
    top = who.eye_height - 0.45
    if au["brow_raise"] > 0.25:  # forehead lines
        for dy in (0.0, -0.11):
            pen.line(curve((-0.35, top + dy), (0, top + dy - 0.04), (0.35, top + dy)),
                     _fold(who.skin, au["brow_raise"] - 0.2), 0.025)
    if au["brow_lower"] > 0.25:  # vertical furrows between the brows
        for side in (-1, 1):
            pen.line([(side * 0.05, top + 0.17), (side * 0.04, top + 0.3)], _fold(who.skin, au["brow_lower"]), 0.025)
    # Nasolabial folds: faint on everyone, deep with a smile, a sneer or raised cheeks.
    fold = 0.15 + 0.8 * max(0.0, au["lip_corner"]) + 0.7 * au["upper_lip_raise"] + 0.4 * au["cheek_raise"]
    for side in (-1, 1):
        corner = who.mouth_width + 0.05
        pen.line(curve((side * who.nose_width * 1.05, who.nose_length - 0.04),
                       (side * (corner + 0.04), (who.nose_length + who.mouth_y) / 2),
                       (side * corner, who.mouth_y + 0.08)), _fold(who.skin, fold), 0.03)


def _draw_nose(pen, who, au):
    sneer = au["upper_lip_raise"]
    tip = who.nose_length - 0.03 * sneer
    pen.fill(ellipse(0, tip, who.nose_width * 0.9, 0.07), shade(who.skin, 0.82))
    pen.fill(ellipse(0, tip - 0.03, who.nose_width * 0.55, 0.06), shade(who.skin, 1.06))
    for side in (-1, 1):
        nostril = ellipse(side * who.nose_width * (0.45 + 0.15 * sneer), tip + 0.03, 0.045, 0.025, 10)
        pen.fill(nostril, shade(who.skin, 0.45))
    pen.line([(0.04, who.eye_height + 0.08), (0.06, tip - 0.08)], shade(who.skin, 0.88), 0.025)
    if sneer > 0.2:  # wrinkles across the bridge of the nose
        for dy in (0.1, 0.17):
            pen.line([(-0.07, who.eye_height + dy), (0.07, who.eye_height + dy)], _fold(who.skin, sneer), 0.022)


def _draw_mouth(pen, who, au):
    up, one, side = au["lip_corner"], au["lip_corner_one_side"], who.smile_side
    # A dropped jaw rounds the mouth; a smile and stretched lips widen it; pressed lips narrow it.
    width = who.mouth_width * (1 + 0.2 * max(0.0, up) + 0.3 * au["lip_stretch"] - 0.18 * au["lip_press"]
                               - 0.25 * au["mouth_open"])
    lip = who.lip_thickness * (1 - 0.75 * au["lip_press"])
    y = who.mouth_y
    corners = []
    for s in (-1, 1):
        pull = one if s == side else 0.0
        corners.append((s * (width + 0.06 * pull), y - 0.1 * up - 0.13 * pull + 0.02 * au["lip_stretch"]))
    left, right = corners
    gap = 0.24 * au["mouth_open"] + 0.04 * au["lip_stretch"] * au["mouth_open"]
    lift = 0.07 * au["upper_lip_raise"]
    upper_inner = curve(left, (0, y - lift), right)
    lower_inner = curve(left, (0, y + gap), right)
    upper_outer = curve(left, (0, y - lift - lip * 0.8), right)
    lower_outer = curve(left, (0, y + gap + lip), right)
    pen.fill(np.concatenate([upper_outer, lower_outer[::-1]]), who.lips)
    if gap > 0.03 or lift > 0.025:
        pen.fill(np.concatenate([upper_inner, lower_inner[::-1]]), (60, 20, 25))
        teeth = min(0.06, gap * 0.5 + lift)
        pen.fill(np.concatenate([upper_inner, curve(left, (0, y - lift + teeth), right)[::-1]]), (235, 232, 220))
    else:
        pen.line(upper_inner, shade(who.lips, 0.55), 0.025)
    if who.facial_hair == "moustache":
        pen.fill(np.concatenate([curve((-0.2, y - 0.07), (0, y - 0.1 - lift), (0.2, y - 0.07)),
                                 curve((0.2, y - 0.15), (0, y - 0.2 - lift), (-0.2, y - 0.15))]), shade(who.hair, 0.9))


def _draw_eye(pen, who, au, side):
    x, y, w = side * who.eye_spacing, who.eye_height, who.eye_size
    opening = max(0.15, 1.0 + 0.75 * au["eye_open"])
    upper = w * 0.55 * opening
    lower = w * 0.45 * max(0.15, opening - 0.8 * au["cheek_raise"])
    cos, sin = _CIRCLE[14].T
    eye = np.stack([x + w * cos, y + np.where(sin < 0, upper, lower) * sin], axis=1)
    pen.fill(eye, (235, 232, 228))
    # The iris, clipped to the opening: eyes wide open show white above and below it.
    iris = ellipse(x, y, w * 0.5, w * 0.5)
    reach = np.sqrt(np.clip(1 - ((iris[:, 0] - x) / w) ** 2, 0, 1))
    iris[:, 1] = np.clip(iris[:, 1], y - upper * reach, y + lower * reach)
    pen.fill(iris, who.iris)
    pen.fill(ellipse(x, y, w * 0.2, min(w * 0.2, upper, lower), 10), (15, 12, 12))
    pen.line(np.concatenate([eye[7:], eye[:1]]), shade(who.skin, 0.35), 0.035)  # upper lid: the sin <= 0 half
    if au["cheek_raise"] > 0.2:  # the bulge of a raised lower lid
        pen.line(curve((x - w, y + lower + 0.03), (x, y + lower + 0.07), (x + w, y + lower + 0.03)),
                 _fold(who.skin, au["cheek_raise"]), 0.025)


_BROW_TAPER = np.stack([np.zeros(7), np.linspace(0.55, 0.3, 7)], axis=1)  # half-thickness, inner to outer end


def _draw_brow(pen, who, au, side):
    raise_, lower, inner_raise = au["brow_raise"], au["brow_lower"], au["inner_brow_raise"]
    base = who.eye_height - 0.2 - who.eye_size * 0.3
    inner = (side * (who.eye_spacing - who.eye_size * 0.85 - 0.05 * lower),
             base - 0.13 * raise_ - 0.15 * inner_raise + 0.1 * lower)
    outer = (side * (who.eye_spacing + who.eye_size * 1.25), base - 0.11 * raise_ + 0.03 * inner_raise + 0.03 * lower)
    arch = who.brow_arch * (1 + 0.5 * raise_ - 0.7 * lower - 0.5 * inner_raise)
    mid = (inner[0] * 0.4 + outer[0] * 0.6, inner[1] * 0.4 + outer[1] * 0.6 - arch)
    spine = curve(inner, mid, outer)
    half = who.brow_thickness * _BROW_TAPER
    pen.fill(np.concatenate([spine - half, (spine + half)[::-1]]), shade(who.hair, 0.8))


def _draw_hair(pen, who, hair_back):
    if who.hair_style == "bald":
        return
    # The cap follows a slightly larger head oval from one temple over the top to the other; the fringe closes it.
    centre, rx, ry = -0.07, who.face_width * 1.06, 1.04
    temple = np.arcsin(np.clip((who.eye_height - (0.0 if hair_back else 0.15) - centre) / ry, -1, 1))
    angles = np.linspace(np.pi - temple, 2 * np.pi + temple, 13)
    cap = np.stack([rx * np.cos(angles), centre + ry * np.sin(angles)], axis=1)
    left, right = cap[0], cap[-1]
    if who.hair_style == "bangs":
        fringe = curve(right, (who.face_width * 0.2 * who.smile_side, who.hairline + 0.25), left)
    else:
        fringe = curve(right, (0, who.hairline), left)
    pen.fill(np.concatenate([cap, fringe]), who.hair)
