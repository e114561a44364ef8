"""Brainmarks plugin (namespace package `brainmarks.models`): registers semantoks encoders as `semantoks`.

    SEMANTOKS_MODEL=results/models/<model>/checkpoint.pt python -m brainmarks.models.test_models semantoks
    python -m brainmarks.main_logistic semantoks cls <task> --overrides model_kwargs.checkpoint=PATH ...
"""

from brainmarks.models.base import Embeddings
from brainmarks.models.registry import register_model

from semantoks.brainmarks.adapter import SemantoksWrapper, build


class SemantoksEmbeddings(SemantoksWrapper):
    """The semantoks wrapper, answering with Brainmarks' Embeddings tuple."""

    def forward(self, batch):
        return Embeddings(*super().forward(batch))


@register_model
def semantoks(checkpoint=None, space="schaefer400", n_crops=4, **kwargs):
    transform, wrapper = build(checkpoint, space, n_crops)
    wrapper.__class__ = SemantoksEmbeddings
    return transform, wrapper
