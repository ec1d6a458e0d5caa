"""Human-readable names of the CVPR40 (EEG-ImageNet) classes.

CVPR40 names its 40 classes by ImageNet synset id (*wnid*). A caption such as
"a photo of a n02690373" means nothing to CLIP, so the readers name each class
by its ImageNet-1k class name (the synset's first lemma) and caption it
"a photo of an airliner".
"""

import re

#: The 40 CVPR40 classes, wnid -> ImageNet-1k class name, in the wnid order of
#: the released files.
CVPR40_CLASS_NAMES = {
    "n02106662": "German shepherd",
    "n02124075": "Egyptian cat",
    "n02281787": "lycaenid",
    "n02389026": "sorrel",
    "n02492035": "capuchin",
    "n02504458": "African elephant",
    "n02510455": "giant panda",
    "n02607072": "anemone fish",
    "n02690373": "airliner",
    "n02906734": "broom",
    "n02951358": "canoe",
    "n02992529": "cellular telephone",
    "n03063599": "coffee mug",
    "n03100240": "convertible",
    "n03180011": "desktop computer",
    "n03197337": "digital watch",
    "n03272010": "electric guitar",
    "n03272562": "electric locomotive",
    "n03297495": "espresso maker",
    "n03376595": "folding chair",
    "n03445777": "golf ball",
    "n03452741": "grand piano",
    "n03584829": "iron",
    "n03590841": "jack-o'-lantern",
    "n03709823": "mailbag",
    "n03773504": "missile",
    "n03775071": "mitten",
    "n03792782": "mountain bike",
    "n03792972": "mountain tent",
    "n03877472": "pajama",
    "n03888257": "parachute",
    "n03982430": "pool table",
    "n04044716": "radio telescope",
    "n04069434": "reflex camera",
    "n04086273": "revolver",
    "n04120489": "running shoe",
    "n07753592": "banana",
    "n07873807": "pizza",
    "n11939491": "daisy",
    "n13054560": "bolete",
}

# Some copies of the class list (e.g. the randomized re-recording of Li et al.)
# give the watch class as the WordNet synset "watch" (not an ImageNet-1k class).
_OTHER_NAMES = {"n04555897": "watch"}

_WNID = re.compile(r"n\d{8}")


def cvpr40_class_name(wnid):
    """The human-readable name of a CVPR40 class, or ``wnid`` itself if unknown.

    Parameters
    ----------
    wnid : str
        An ImageNet synset id such as ``'n02690373'``.

    Returns
    -------
    name : str
        For example ``'airliner'``.
    """
    return CVPR40_CLASS_NAMES.get(wnid) or _OTHER_NAMES.get(wnid, wnid)


def class_caption(name):
    """The default caption of a class: ``'a photo of a broom'``, ``'a photo of an airliner'``.

    Parameters
    ----------
    name : str
        A class name.

    Returns
    -------
    caption : str
    """
    # A vowel letter is a vowel sound for every CVPR40 name (and a wnid gets "a").
    article = "an" if name[:1].lower() in "aeiou" else "a"
    return f"a photo of {article} {name}"


def names_a_wnid(caption):
    """Whether a caption contains a wnid (as ``'a photo of a n02690373'``): no use to CLIP."""
    return bool(_WNID.search(caption))
