"""The masked contrastive check of Wav2Vec2ForPreTraining.

A model pretrained with wav2vec 2.0's contrastive task predicts, at masked frames, a
context vector (``projected_states``) close to the quantized target of that frame
(``projected_quantized_states``). transformers' integration test asserts the mean cosine
similarity at masked frames exceeds 0.5; a random model sits near 0. To read the figure
against something, we also report it at unmasked frames and against shuffled targets
(the same masked frames, targets permuted in time), and in train mode the contrastive
loss, diversity loss and codevector perplexity with sampled negatives.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .config import CheckConfig
from .errors import DataError
from .models import LoadedModel


@dataclass
class PretrainCheckResult:
    model: str
    audio: str
    frames: int
    masked_frames: int
    cosine_masked: float  # mean cosine similarity at masked frames: the figure checked
    cosine_masked_std: float
    cosine_unmasked: float | None  # at frames left unmasked
    cosine_shuffled: float  # masked frames against time-shuffled targets
    contrastive_loss: float  # train mode, sampled negatives (sum over masked frames)
    diversity_loss: float
    loss: float  # contrastive + diversity_loss_weight * diversity
    codevector_perplexity: float
    threshold: float
    passed: bool

    def to_dict(self) -> dict:
        return asdict(self)


def pretrain_check(
    loaded: LoadedModel, audio: np.ndarray, options: CheckConfig, audio_name: str = ""
) -> PretrainCheckResult:
    """Run the check on `audio` (float32 mono at the model's rate, shape (samples,))."""
    import torch
    from transformers.models.wav2vec2.modeling_wav2vec2 import (
        _compute_mask_indices,
        _sample_negative_indices,
    )

    from .inference import normalize

    model = loaded.model
    x = normalize(audio) if loaded.do_normalize else audio
    inputs = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None].to(loaded.device)
    frames = int(model._get_feat_extract_output_lengths(torch.tensor(inputs.shape[1])).item())
    if frames < 2 * options.mask_length + 2:
        raise DataError(
            f"the audio gives only {frames} frames; the check needs at least "
            f"{2 * options.mask_length + 2}: use a recording of a second or more"
        )

    # Both helpers draw from numpy's global generator; seed it so runs repeat.
    np.random.seed(options.seed)
    torch.manual_seed(options.seed)
    mask = _compute_mask_indices((1, frames), options.mask_prob, options.mask_length, min_masks=2)
    mask_t = torch.from_numpy(mask).to(loaded.device)

    model.eval()
    with torch.inference_mode():
        out = model(inputs, mask_time_indices=mask_t)
    predicted = out.projected_states[0].float()  # (frames, proj_codevector_dim)
    targets = out.projected_quantized_states[0].float()
    cosine = torch.cosine_similarity(predicted, targets, dim=-1)  # (frames,)
    masked = cosine[mask_t[0]]
    unmasked = cosine[~mask_t[0]]
    order = torch.from_numpy(np.random.permutation(frames)).to(loaded.device)
    shuffled = torch.cosine_similarity(predicted, targets[order], dim=-1)[mask_t[0]]

    # transformers 5 returns loss=None unless sampled_negative_indices is passed.
    negatives = _sample_negative_indices((1, frames), options.num_negatives, mask)
    model.train()
    try:
        with torch.no_grad():
            trained = model(
                inputs,
                mask_time_indices=mask_t,
                sampled_negative_indices=torch.from_numpy(negatives).long().to(loaded.device),
            )
    finally:
        model.eval()

    cosine_masked = float(masked.mean())
    return PretrainCheckResult(
        model=loaded.name,
        audio=audio_name,
        frames=frames,
        masked_frames=int(mask.sum()),
        cosine_masked=cosine_masked,
        cosine_masked_std=float(masked.std()) if len(masked) > 1 else 0.0,
        cosine_unmasked=float(unmasked.mean()) if len(unmasked) else None,
        cosine_shuffled=float(shuffled.mean()),
        contrastive_loss=float(trained.contrastive_loss),
        diversity_loss=float(trained.diversity_loss),
        loss=float(trained.loss),
        codevector_perplexity=float(trained.codevector_perplexity),
        threshold=options.threshold,
        passed=cosine_masked > options.threshold,
    )
