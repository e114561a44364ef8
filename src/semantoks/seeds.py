"""Pretraining seeds, the feature sets drawn over them, and how their scores pool (free of the probes and
of torch: the workflow, the probes, the report and the model card all read it).

`model` and `random_init` (and fused sets made with them) are embedded once per pretraining seed and
probed as `<set>@<seed>` on the same splits as every other set. Their pooled entry, under the set's
own name, scores each split with the mean over seeds of the per-seed scores on that split, so a paired
test of the pooled set tests the per-split difference averaged over seeds with the same corrected
t-test (probes/paired.py). Its seed interval is the range (min to max) of the per-seed means.
"""

SEED_MARK = "@"


def seeded_name(name, seed):
    """The probed name of `name` drawn at pretraining seed `seed`."""
    return f"{name}{SEED_MARK}{seed}"


def split_seed(name):
    """(set name, seed) of a seeded name; (name, None) for a set not drawn per seed."""
    base, mark, seed = name.partition(SEED_MARK)
    return (base, int(seed)) if mark else (name, None)


def seed_groups(names):
    """{set name: [its seeded names]} of the seeded names among `names`, in first-use order."""
    groups = {}
    for name in names:
        base, seed = split_seed(name)
        if seed is not None:
            groups.setdefault(base, []).append(name)
    return groups


def pretrain_seeds(section):
    """The pretraining seeds of a config `pretrain` section: `seed`, `seed + 1`, ... (`seeds` of them)."""
    first = int(section.get("seed", 0))
    return list(range(first, first + int(section.get("seeds", 1))))
