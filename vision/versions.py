"""What each stage's labels depend on, told without importing the stage (so without torch).

The pipeline version is computed by the ingest client, which never runs a model; importing the
stages there cost seconds before the cluster even started. Each stage's `version()` returns the
function here of the same name, so there is one answer. A model's version comes from the manifest
the settings name; a rules revision changes when code changes the labels beyond the model files.
"""

from __future__ import annotations

from configs import Settings
from configs.manifest import Manifest, load_manifest
from vision import garment_embedding

DETECTOR_MODEL = "yolov3-tiny-coco"
# Letterboxing to the next multiple of 32, and the zoomed-out pass only where the first hints at a large person.
DETECTION_RULES = "letterbox32-zoomgate-1"
POSE_MODEL = "blazepose-ghum-full"
PARSER_MODEL = "garment-parser"
BACKBONE_MODEL = "efficientnet-lite0"
CLASSIFIER_MODEL = "garment-heads"
COLOR_RULES = "oklab-shares-2"
GARMENT_RULES = "whole-garments-2"  # 2: top and skirt told apart by their cloth, bare shins are not trousers
MIRROR_AVERAGE = True  # the garment stage's crop features average each crop with its mirror image
# The parser's pixel classes average each person crop's parse with its mirror image's: +0.006 to
# +0.009 CCP held-out mean IoU on three draws of parser version 2 (-0.009 on version 1).
PARSER_MIRROR_AVERAGE = True
# The parser's class probabilities are guided-filtered with the person crop's colours (radius and
# eps on the 256 crop, colours in [0, 1], window statistics at half resolution), so class boundaries
# follow the photo's edges rather than the head's 64 x 64 cells. Chosen on CCP training photos
# (parser's map 0.722 -> 0.756; radius 4-12, eps 1e-5-5e-2 tried; full resolution 0.757 at 4 x the
# cost). None: off.
PARSER_EDGE_GUIDE: tuple[int, float, int] | None = (8, 1e-4, 2)
FACE_DETECTOR_MODEL = "mtcnn"
FACE_CLASSIFIER_MODEL = "fer-mini-xception"


def _models(manifest: Manifest, *names: str) -> list[str]:
    return [f"{record.name}@{record.version}" for record in map(manifest.get, names)]


def pass_through(settings: Settings) -> str:
    return "0"


def person_detection(settings: Settings, model_name: str = DETECTOR_MODEL) -> str:
    return "+".join([*_models(load_manifest(settings.models.manifest), model_name), DETECTION_RULES])


def garments(settings: Settings, colors: bool = True, embedding: bool = True) -> str:
    """Every model and rule set behind the garment labels and embeddings: a change to any one re-ingests.
    colors=False leaves out the colour rules (what a stored label's masks and categories depend on);
    embedding=False the embedding (what the labels and the crop features depend on)."""
    manifest = load_manifest(settings.models.manifest)
    embedder = garment_embedding.embedder(backbone_features(manifest))
    return "+".join([*_models(manifest, PARSER_MODEL, POSE_MODEL, BACKBONE_MODEL, CLASSIFIER_MODEL),
                     *([COLOR_RULES] if colors else []), GARMENT_RULES, *(["parser-mirror"] if PARSER_MIRROR_AVERAGE else []),
                     *(["parser-guided-" + "-".join(f"{v:g}" for v in PARSER_EDGE_GUIDE)] if PARSER_EDGE_GUIDE else []),
                     *([embedder.version] if embedding else [backbone_features(manifest)])])


def backbone_features(manifest: Manifest) -> str:
    """What the garment stage's crop features are: the backbone's file version, and whether each is
    averaged with its mirror image (embeddings are made from them)."""
    return manifest.get(BACKBONE_MODEL).version + ("+mirror" if MIRROR_AVERAGE else "")


def face_expression(settings: Settings, detector_name: str = FACE_DETECTOR_MODEL,
                    classifier_name: str = FACE_CLASSIFIER_MODEL) -> str:
    return "+".join(_models(load_manifest(settings.models.manifest), detector_name, classifier_name))
