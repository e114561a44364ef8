"""The training-health verdict: thresholds and labels, free of torch so the report stage can use them.

The metrics come from semantoks.model.health.measure_health; docs/model.md ("Training health")
explains them.
"""

LEARNING = "learning"
INDISTINGUISHABLE = "indistinguishable from its random init"
COLLAPSED = "collapsed"

# Linear CKA with the step-0 embeddings above this: the representation is still the random one.
INDISTINGUISHABLE_CKA = 0.95
# RankMe below this: the embeddings span about one direction (dimensional collapse).
COLLAPSED_RANKME = 2.0
# Mean pairwise cosine of (uncentred) CLS or token embeddings above this: every input maps to the same vector.
COLLAPSED_COSINE = 0.99
HEALTH_KEYS = ("drift_r", "cka_init", "rankme", "token_cosine", "cls_cosine")


def verdict(metrics):
    """(label, reason) for a dict of health metrics: indistinguishable first, then collapsed, else learning.

    The CKA test comes first: a model still equal to its init is "indistinguishable" even if the
    random init itself has similar outputs for every input.
    """
    cka = float(metrics["cka_init"])
    if cka > INDISTINGUISHABLE_CKA:
        return INDISTINGUISHABLE, f"linear CKA with the step-0 embeddings is {cka:.3f} (> {INDISTINGUISHABLE_CKA})"
    rank = float(metrics["rankme"])
    if rank < COLLAPSED_RANKME:
        return COLLAPSED, f"effective rank (RankMe) of the embeddings is {rank:.2f} (< {COLLAPSED_RANKME})"
    for key, name in (("cls_cosine", "CLS"), ("token_cosine", "token")):
        cosine = float(metrics[key])
        if cosine > COLLAPSED_COSINE:
            return COLLAPSED, f"mean pairwise cosine of {name} embeddings is {cosine:.3f} (> {COLLAPSED_COSINE})"
    return LEARNING, (f"linear CKA with the step-0 embeddings is {cka:.3f} (<= {INDISTINGUISHABLE_CKA}), "
                      f"effective rank {rank:.1f}, CLS cosine {float(metrics['cls_cosine']):.3f}")
