"""CLIP from a library (lesson 01): ``transformers``' own CLIP next to ours.

* :class:`HFCLIPAdapter`: a ``transformers.CLIPModel`` of about our size, built from a config (no download), behind
  our CLIP's interface, so that :func:`~dalle2_lessons.clip.train_clip` and
  :func:`~dalle2_lessons.clip_embeddings.evaluate_clip` run on both; :func:`hf_clip_loss`, the library's loss;
* :func:`load_pretrained_clip`, :func:`pretrained_zero_shot`: OpenAI's pretrained CLIP, when it is in the local cache
  or may be downloaded.

``transformers`` is imported inside the functions: importing this module costs nothing.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .clip import CLIPConfig


# ----------------------------------------------------------------------------------------------
# The same job done by a library: a tiny transformers.CLIPModel, built from a config (no download).


def hf_clip_loss(logits_per_text: torch.Tensor) -> torch.Tensor:
    """``transformers``' own CLIP loss on a ``(B, B)`` text-by-image logit matrix (its name changed in v5)."""
    from transformers.models.clip import modeling_clip

    loss = getattr(modeling_clip, "clip_loss", None) or modeling_clip.image_text_contrastive_loss
    return loss(logits_per_text)


class HFCLIPAdapter(nn.Module):
    """A ``transformers.CLIPModel`` of about our size behind our CLIP's interface (``forward`` returns
    the loss, ``encode_*`` unit vectors), so the same training and evaluation code runs on both.

    The library's image tower is a ViT (4×4-pixel patches) and its temperature is not clamped.
    """

    def __init__(self, config: CLIPConfig, pad_id: int, start_id: int, end_id: int):
        super().__init__()
        import transformers

        width = 4 * config.image_width
        hf_config = transformers.CLIPConfig(
            text_config=dict(
                vocab_size=config.vocab_size, hidden_size=config.text_width, intermediate_size=4 * config.text_width,
                num_hidden_layers=config.text_layers, num_attention_heads=config.text_heads,
                max_position_embeddings=config.context_length, pad_token_id=pad_id, bos_token_id=start_id,
                eos_token_id=end_id,
            ),
            vision_config=dict(
                image_size=config.resolution, patch_size=4, hidden_size=width, intermediate_size=4 * width,
                num_hidden_layers=3, num_attention_heads=config.image_heads, num_channels=3,
            ),
            projection_dim=config.embed_dim,
        )  # fmt: skip
        self.hf = transformers.CLIPModel(hf_config)
        self.pad_id = pad_id

    @property
    def logit_scale(self) -> nn.Parameter:
        return self.hf.logit_scale

    def temperature_scale(self) -> torch.Tensor:
        return self.hf.logit_scale.exp()

    def forward(self, images: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        out = self.hf(
            input_ids=tokens, pixel_values=images, attention_mask=(tokens != self.pad_id).long(), return_loss=True
        )
        return out.loss

    @staticmethod
    def _features(out) -> torch.Tensor:  # transformers < 5 returns the tensor, ≥ 5 an output object
        return out if isinstance(out, torch.Tensor) else out.pooler_output

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self._features(self.hf.get_image_features(pixel_values=images)), dim=-1)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        out = self.hf.get_text_features(input_ids=tokens, attention_mask=(tokens != self.pad_id).long())
        return F.normalize(self._features(out), dim=-1)


# ----------------------------------------------------------------------------------------------
# Optional: OpenAI's pretrained CLIP, when it is in the local cache or may be downloaded.

PRETRAINED = "openai/clip-vit-base-patch32"
#: The pixel statistics OpenAI's CLIP was trained with (RGB in [0, 1]).
OPENAI_MEAN, OPENAI_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)


def load_pretrained_clip(name: str = PRETRAINED, allow_download: bool = False):
    """``(transformers.CLIPModel, tokenizer)`` from the local Hugging Face cache, or downloaded (~600 MB)
    when ``allow_download``. Returns ``None``, with a message saying why, when neither works (offline,
    say): the optional pretrained sections of the lessons skip, they never fail."""
    import transformers

    try:
        model = transformers.CLIPModel.from_pretrained(name, local_files_only=not allow_download)
        hf_tokenizer = transformers.AutoTokenizer.from_pretrained(name, local_files_only=not allow_download)
    except Exception as e:  # noqa: BLE001 - offline, not cached, or a hub error: every one means "skip"
        why = "it is not in the local cache" if not allow_download else "it could not be downloaded"
        print(f"Skipping the pretrained CLIP {name!r}: {why} ({type(e).__name__}).")
        if not allow_download:
            print("Set allow_download=True (TRY_PRETRAINED = True in the lesson) on a machine with internet "
                  "to fetch it.")
        return None
    return model.eval(), hf_tokenizer


@torch.no_grad()
def pretrained_zero_shot(
    model, hf_tokenizer, images: torch.Tensor, class_names: tuple[str, ...], template: str = "a photo of a {}"
) -> torch.Tensor:
    """Zero-shot classification with a ``transformers.CLIPModel``.

    Args:
        images: ``(B, 3, R, R)`` in [-1, 1]; resized to the model's input size and normalised as it expects.
        class_names: one prompt per class, ``template.format(name)``.
    Returns:
        ``(B,)`` int64 index of the most similar class prompt.
    """
    size = model.config.vision_config.image_size
    pixels = F.interpolate((images + 1) / 2, size=size, mode="bicubic", align_corners=False).clamp(0, 1)
    pixels = (pixels - torch.tensor(OPENAI_MEAN)[:, None, None]) / torch.tensor(OPENAI_STD)[:, None, None]
    text = hf_tokenizer([template.format(c) for c in class_names], padding=True, return_tensors="pt")
    image_emb = F.normalize(HFCLIPAdapter._features(model.get_image_features(pixel_values=pixels)), dim=-1)
    text_emb = F.normalize(HFCLIPAdapter._features(model.get_text_features(**text)), dim=-1)
    return (image_emb @ text_emb.T).argmax(dim=-1)
