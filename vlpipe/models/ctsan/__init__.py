"""CT-SAN (Yu et al., CVPR 2017; thesis ch. 4): concept words detected by tracing LSTMs over a
grid of frame features, read by semantic attention in the language models (description,
multiple choice, retrieval and fill in the blank). ``detector: false`` is Base-SAN.
Reads the data set's concept words (`vlpipe.text.concepts`)."""

from vlpipe.models.ctsan.config import CTSANConfig
from vlpipe.models.family import ModelFamily

FAMILY = ModelFamily(name="ctsan", config=CTSANConfig,
                     builder="vlpipe.models.ctsan.model:build",
                     tasks=("captioning", "multiple_choice", "retrieval", "fill_in_blank"),
                     reads_concepts=True)
