"""The names the building blocks accept, without torch: the model families' configs check
their settings against these when the workflow is planned."""

ACTIVATION_NAMES: tuple[str, ...] = ("tanh", "relu", "leaky_relu")  # `layers.ACTIVATIONS`
ENCODER_KINDS: tuple[str, ...] = ("blstm", "lstm", "fc", "conv")  # `encoders.SequenceEncoder`
ATTENTIONS: tuple[str, ...] = ("none", "dot", "multiplicative", "additive")  # `FrameAttention`
