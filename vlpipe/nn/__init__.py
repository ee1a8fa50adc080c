"""Building blocks shared by every model family: layers, sequence encoders, frame attention,
losses and beam search. Nothing here belongs to one paper."""
