"""The ground floor: the label records every other package stands on (vision writes them, the index
stores them, the review page edits them, export writes them), the fixed vocabulary and the mask codec.

Imports nothing of Vestis but `configs`; see docs/architecture.md.
"""

from labels.labels import (Alternative, Box, Embedding, Face, FrameLabels, Garment, Label, Mask, Person, Provenance, RuleSet,
                           SampleReason)

__all__ = ["Alternative", "Box", "Embedding", "Face", "FrameLabels", "Garment", "Label", "Mask", "Person", "Provenance", "RuleSet",
           "SampleReason"]
