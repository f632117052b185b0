"""The canonical emotion classes and the spellings and codes other datasets use for them.

Plain Python (no Django), in training/ because training/ and gan/ use them and never import the Django app: the
app's importers, commands and tests share this one definition. Codes follow AffectNet's own
order; FER2013 has its own 7-class order and is mapped by name, never by position.
"""

# AffectNet code order: the code is the class index everywhere in this product.
CLASSES = ("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "contempt")
NUM_CLASSES = len(CLASSES)
CODE = {name: code for code, name in enumerate(CLASSES)}

_SPELLINGS = {
    "neutral": "neutral",
    "happy": "happy",
    "happiness": "happy",
    "sad": "sad",
    "sadness": "sad",
    "surprise": "surprise",
    "surprised": "surprise",
    "fear": "fear",
    "fearful": "fear",
    "disgust": "disgust",
    "disgusted": "disgust",
    "anger": "anger",
    "angry": "anger",
    "contempt": "contempt",
}

# AffectNet codes that are annotations but not emotions: the importer skips and counts them.
AFFECTNET_NOT_EMOTION = {8: "none", 9: "uncertain", 10: "no_face"}

# FER2013's own order: 0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise, 6 neutral.
FER2013_CLASSES = ("anger", "disgust", "fear", "happy", "sad", "surprise", "neutral")


class UnknownLabel(ValueError):
    """A label that names no canonical class."""


def parse_label(value):
    """Return the canonical code (0-7) for a spelling such as 'Happiness', 'angry' or 'sad'.

    Numbers are not accepted here: a bare number means different classes in different datasets, so each importer
    maps its own codes (see affectnet_code and fer2013_code).
    """
    key = str(value).strip().lower()
    if key not in _SPELLINGS:
        raise UnknownLabel(f"unknown label {value!r}; expected one of {', '.join(CLASSES)}")
    return CODE[_SPELLINGS[key]]


def label_name(code):
    return CLASSES[int(code)]


def affectnet_code(value):
    """Map an AffectNet expression annotation to a canonical code, or None for 8/9/10 (not an emotion).

    Raises UnknownLabel for anything else.
    """
    try:
        code = int(float(str(value).strip()))
    except ValueError:
        raise UnknownLabel(f"AffectNet expression {value!r} is not a number") from None
    if 0 <= code < NUM_CLASSES:
        return code
    if code in AFFECTNET_NOT_EMOTION:
        return None
    raise UnknownLabel(f"AffectNet expression code {code} is outside 0-10")


def fer2013_code(value):
    try:
        fer = int(str(value).strip())
    except ValueError:
        raise UnknownLabel(f"FER2013 emotion {value!r} is not a number") from None
    if not 0 <= fer < len(FER2013_CLASSES):
        raise UnknownLabel(f"FER2013 emotion code {fer} is outside 0-6")
    return CODE[FER2013_CLASSES[fer]]
