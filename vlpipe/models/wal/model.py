"""WAL: Watch and Learn — video ↔ subtitle correspondence learned from noisy pairs.

A vision channel (per-frame features → FC-BN-ReLU, pooled by the sentence's attention over the
frames) and a language channel (a frozen sentence vector → FC-BN-ReLU) meet in one similarity
``p_LVC = sᵀv``, which the classifier ``F_LVC`` turns into a match logit (BCE against
aligned / random pairs). The discriminator compares ``p_LVC`` with ``p_ADV = max_b sᵀv_b`` over
learned background visual vectors; its classifier ``F_ADV`` gives the logit of a binary latent
``z`` (Gumbel-softmax). Pairs with z = 0 train the LVC loss; pairs with z = 1 train the
adversarial loss ``BCE(F_ADV(·), y=0)``, which pushes the discriminator to let more pairs in.

The paper's variants are flags of `WALConfig`:

    WAL                   attention="none", adversarial=False
    WAL-att               adversarial=False
    WAL-att-adv           the defaults (4 background vectors)
    BVF=16 / 64           backgrounds=16 / 64
    G=softmax             sampler="softmax"
    in=concat / p_ADV     discriminator_input="concat" / "p_adv"
    (triplet)             loss="triplet" (VSE++: hardest in-batch negative, margin 0.2)

Decisions the paper leaves open, taken here: s and v are L2-normalised, so p is a cosine and
the background vectors compare on the same scale; ``F_LVC`` starts as 5·p; the discriminator
judges pairs without moving the embeddings (its inputs are detached), and while it is fixed
(the first ``discriminator_warmup`` epochs) it still routes pairs but no loss reaches it;
losses are means over pairs (the paper: sums). Whether the discriminator also judges the random
negative pairs is open too: ``route="all"`` (the default, the paper as written) or
``"aligned"``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vlpipe.models.inputs import ModelInputs
from vlpipe.models.wal.config import WALConfig
from vlpipe.nn.attention import FrameAttention
from vlpipe.nn.layers import Dense, masked_apply, masked_mean


class Discriminator(nn.Module):
    """Background visual vectors, ``p_ADV = max_b cos(s, v_b)`` and the classifier ``F_ADV``
    whose output is the logit of z = 1 (the pair is left out of the LVC loss)."""

    def __init__(self, config: WALConfig) -> None:
        super().__init__()
        self.input = config.discriminator_input
        self.backgrounds = nn.Parameter(F.normalize(torch.randn(config.backgrounds,
                                                                config.embed_dim), dim=-1))
        self.classifier = nn.Linear(2 if self.input == "concat" else 1, 1)  # F_ADV

    def forward(self, sentences: Tensor, p_lvc: Tensor) -> Tensor:
        """sentences (P, E) normalised, p_lvc (P,) → F_ADV logits (P,)."""
        p_adv = (sentences @ F.normalize(self.backgrounds, dim=-1).T).amax(dim=-1)  # (P,)
        if self.input == "difference":
            features = (p_adv - p_lvc)[:, None]
        elif self.input == "concat":
            features = torch.stack([p_lvc, p_adv], dim=-1)
        else:
            features = p_adv[:, None]
        return self.classifier(features).squeeze(-1)


class WAL(nn.Module):
    """Watch and Learn over precomputed frame features and frozen sentence vectors.

    ``vocab_size`` and ``word_vectors`` belong to the model registry's constructor; WAL reads
    sentence vectors of size ``text_dim`` instead of words.
    """

    def __init__(self, config: WALConfig, vocab_size: int, video_dim: int,
                 word_vectors: np.ndarray | None = None, *, text_dim: int) -> None:
        super().__init__()
        if word_vectors is not None:
            raise ValueError("WAL reads sentence vectors (the text store); word embeddings "
                             "(text.embeddings) are not used by it")
        self.config = config
        dim = config.embed_dim
        self.video_embed = Dense(video_dim, dim, activation="relu")  # FC-BN-ReLU per frame
        self.text_embed = Dense(text_dim, dim, activation="relu")
        self.attention = FrameAttention(config.attention, dim, dim, config.attention_hidden)
        self.lvc_head = nn.Linear(1, 1)  # F_LVC
        with torch.no_grad():
            self.lvc_head.weight.fill_(5.0)
            self.lvc_head.bias.zero_()
        self.discriminator = Discriminator(config) if config.adversarial else None
        self.discriminator_fixed = True
        self._routed = [0.0, 0]  # training pairs sent to the LVC loss (Σ 1 − z), all pairs

    # -- encoders ---------------------------------------------------------------------------
    def encode_video(self, feats: Tensor, mask: Tensor) -> Tensor:
        """Frame features (B, N, D) → embedded frames (B, N, E), zero at padding."""
        return masked_apply(self.video_embed, feats, mask)

    def encode_text(self, sentences: Tensor) -> Tensor:
        """Sentence vectors (B, D_text) → normalised embeddings s (B, E)."""
        return F.normalize(self.text_embed(sentences), dim=-1)

    # -- scores -----------------------------------------------------------------------------
    def pair_similarity(self, frames: Tensor, mask: Tensor, sentences: Tensor) -> Tensor:
        """p_LVC = cos(s, v) of aligned pairs: frames (P, N, E), s (P, E) → (P,)."""
        video = F.normalize(self.attention(frames, mask, sentences), dim=-1)  # (P, E)
        return (video * sentences).sum(dim=-1)

    def similarity_matrix(self, frames: Tensor, mask: Tensor, sentences: Tensor) -> Tensor:
        """p_LVC of every (sentence, clip): frames (V, N, E), s (T, E) → (T, V)."""
        videos = F.normalize(self.attention(frames, mask, sentences, all_pairs=True), dim=-1)
        return torch.einsum("tve,te->tv", videos, sentences)

    def match_logits(self, similarity: Tensor) -> Tensor:
        """F_LVC: similarities (any shape) → match logits of the same shape."""
        return self.lvc_head(similarity.unsqueeze(-1)).squeeze(-1)

    @torch.no_grad()
    def score_matrix(self, frames: Tensor, mask: Tensor, sentences: Tensor,
                     max_elements: int = 2**26) -> Tensor:
        """Match logits (T, V) of every sentence against every clip, in float32 even under
        autocast (bfloat16 scores would tie). The attention makes each clip's vector depend on
        the sentence, so sentences go in blocks whose largest intermediate — (block, V, N, H)
        for additive attention, (block, V, E) otherwise — stays under ``max_elements``."""
        frames, sentences = frames.float(), sentences.float()
        clips, steps, dim = frames.shape
        width = steps * self.config.attention_hidden if self.config.attention == "additive" else dim
        block = max(1, max_elements // (clips * width))
        with torch.autocast(frames.device.type, enabled=False):
            return torch.cat([self.match_logits(self.similarity_matrix(frames, mask, chunk))
                              for chunk in sentences.split(block)])

    # -- training ---------------------------------------------------------------------------
    def start_epoch(self, epoch: int) -> None:
        """Training-loop hook: the discriminator is fixed for the first epochs."""
        self.discriminator_fixed = epoch <= self.config.discriminator_warmup

    def epoch_stats(self) -> dict[str, float]:
        """Training-loop hook: the fraction of this epoch's pairs routed to the LVC loss
        (z = 0; the paper's Figure 4; the mean of 1 − z for the soft sampler), then the count
        restarts."""
        used, total = self._routed
        self._routed = [0.0, 0]
        return {"lvc_fraction": used / total} if self.discriminator is not None and total else {}

    @torch.no_grad()
    def initialise_from(self, task) -> None:
        """Training-loop hook: each background vector starts as the mean of a random group of
        L2-normalised training videos (ResNet features → the initial FC, mean over frames)."""
        if self.discriminator is None:
            return
        feats, mask = task.sample_videos(16 * self.config.backgrounds,
                                         seed=int(torch.randint(2**31, ())))
        device = self.discriminator.backgrounds.device
        was_training = self.training
        self.eval()
        frames = self.encode_video(feats.to(device), mask.to(device))
        videos = F.normalize(masked_mean(frames, mask.to(device)), dim=-1)  # (S, E)
        self.train(was_training)
        groups = torch.randperm(len(videos), device=device) % self.config.backgrounds
        means = torch.stack([videos[groups == b].mean(dim=0)
                             for b in range(self.config.backgrounds)])
        self.discriminator.backgrounds.copy_(F.normalize(means, dim=-1))

    def _route(self, sentences: Tensor, p_lvc: Tensor,
               judged: Tensor) -> tuple[Tensor, Tensor | None]:
        """z (P,) in [0, 1] (1 = left out of the LVC loss; 0 where not ``judged``) and the
        adversarial loss per pair, None while the discriminator is fixed."""
        if self.discriminator_fixed:
            with torch.no_grad():
                z_logit = self.discriminator(sentences, p_lvc)
            adversarial = None
        else:
            z_logit = self.discriminator(sentences.detach(), p_lvc.detach())
            adversarial = F.softplus(z_logit)  # BCE(F_ADV(·), y = 0)
        two_way = torch.stack([torch.zeros_like(z_logit), z_logit], dim=-1)  # (P, 2): z = 0, 1
        if self.config.sampler == "gumbel":
            z = F.gumbel_softmax(two_way, tau=self.config.temperature, hard=True)[:, 1]
        else:
            z = (two_way / self.config.temperature).softmax(dim=-1)[:, 1]
        z = z * judged  # the pairs it does not judge always train the LVC loss
        self._routed[0] += float((1 - z.detach())[judged].sum())  # soft z: expected share
        self._routed[1] += int(judged.sum())
        return z, adversarial

    def _combine(self, lvc: Tensor, sentences: Tensor, p_lvc: Tensor,
                 aligned: Tensor) -> Tensor:
        """Per-pair LVC losses (P,) → the batch loss, routed by the discriminator if any."""
        if self.discriminator is None:
            return lvc.mean()
        judged = aligned if self.config.route == "aligned" else torch.ones_like(aligned)
        z, adversarial = self._route(sentences, p_lvc, judged)
        loss = (1 - z) * lvc
        if adversarial is not None:
            loss = loss + z * adversarial
        return loss.mean()

    def correspondence_loss(self, feats: Tensor, mask: Tensor, sentence_vectors: Tensor,
                            labels: Tensor) -> Tensor:
        """The training loss of a batch of (clip, sentence) pairs with labels 1 (aligned) /
        0 (random sentence): feats (P, N, D), mask (P, N), sentence_vectors (P, D_text),
        labels (P,). ``loss="triplet"`` uses the aligned pairs only, each against the hardest
        other clip and sentence of the batch."""
        frames = self.encode_video(feats, mask)  # (P, N, E)
        sentences = self.encode_text(sentence_vectors)  # (P, E)
        if self.config.loss == "bce":
            p_lvc = self.pair_similarity(frames, mask, sentences)  # (P,)
            lvc = F.binary_cross_entropy_with_logits(self.match_logits(p_lvc), labels.float(),
                                                     reduction="none")
            return self._combine(lvc, sentences, p_lvc, labels.bool())
        aligned = labels.bool()
        frames, mask, sentences = frames[aligned], mask[aligned], sentences[aligned]
        similarity = self.similarity_matrix(frames, mask, sentences)  # (B sentences, B clips)
        return self._combine(hardest_negative_triplet(similarity, self.config.margin),
                             sentences, similarity.diagonal(), aligned[aligned])


def hardest_negative_triplet(similarity: Tensor, margin: float) -> Tensor:
    """VSE++ max-violation loss per aligned pair: similarity (B, B) with the positives on the
    diagonal → (B,): hinge against the hardest other clip plus the hardest other sentence."""
    positive = similarity.diagonal()  # (B,)
    diagonal = torch.eye(len(similarity), dtype=torch.bool, device=similarity.device)
    clips = (margin - positive[:, None] + similarity).clamp(min=0).masked_fill(diagonal, 0)
    sentences = (margin - positive[None, :] + similarity).clamp(min=0).masked_fill(diagonal, 0)
    return clips.amax(dim=1) + sentences.amax(dim=0)


def build(config: WALConfig, inputs: ModelInputs) -> WAL:
    """WAL over the frames (arrays side by side per step) and the frozen sentence vectors."""
    if inputs.sentence_dim is None:
        raise ValueError("WAL reads sentence vectors (the text store); this task has none")
    return WAL(config, inputs.vocab_size, inputs.video_dim, inputs.word_vectors,
               text_dim=inputs.sentence_dim)
