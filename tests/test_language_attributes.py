"""Descriptor-attribute probes: three bands from the z-reference, probes beside a shuffled null and majority chance."""

import numpy as np
import pytest

from semantoks.language.attributes import attribute_bands, attribute_probes


def test_bands_by_hand():
    z = np.array([[-2.5, -1.0, 0.0, 1.0, 1.01, np.nan]])
    np.testing.assert_array_equal(attribute_bands(z), [[0, 1, 1, 1, 2, -1]])


def test_probes_read_bands_from_planted_features_and_skip_unusable_descriptors():
    rng = np.random.default_rng(0)
    n = 90
    signal = rng.standard_normal((n, 3))
    names = ["fc.A--B", "fc.A--C", "graph.efficiency", "graph.modularity", "dynamics.sd.A"]
    z = np.column_stack([signal[:, 0] * 1.5, signal[:, 1] * 1.5, signal[:, 2] * 1.5,
                         np.zeros(n),  # one band only: not probed
                         rng.standard_normal(n) * 1.5])  # unrelated to any feature
    z[0, 4] = np.nan  # undefined on one scan: not probed
    informative = np.column_stack([signal, rng.standard_normal((n, 5))])
    noise = rng.standard_normal((n, 8))
    train = np.arange(n) < 60
    result = attribute_probes(z, names, train, {"informative": informative, "noise": noise}, n_null=5, seed=0)
    assert result["n_descriptors"] == 3 and result["bands"] == ["lower", "typical", "elevated"]
    fc, graph = result["per_family"]["fc"], result["per_family"]["graph"]
    assert fc["informative"]["n_descriptors"] == 2 and graph["informative"]["n_descriptors"] == 1
    assert "dynamics" not in result["per_family"]
    for family in (fc, graph):
        assert family["informative"]["balanced_accuracy"] > family["informative"]["null_mean"] + 0.2
        assert family["informative"]["balanced_accuracy"] > family["noise"]["balanced_accuracy"]
        assert family["noise"]["balanced_accuracy"] < 0.6 and family["informative"]["majority"] == pytest.approx(1 / 3)
    again = attribute_probes(z, names, train, {"informative": informative}, n_null=5, seed=0)
    assert again["per_family"]["fc"]["informative"] == fc["informative"]


def test_the_null_permutes_whole_subjects(monkeypatch):
    import semantoks.language.attributes as attributes

    seen = {}
    original = attributes.subject_label_shuffles

    def spy(labels, subjects, *args, **kwargs):
        seen["shuffles"], seen["subjects"] = original(labels, subjects, *args, **kwargs), subjects
        return seen["shuffles"]

    monkeypatch.setattr(attributes, "subject_label_shuffles", spy)
    rng = np.random.default_rng(2)
    subjects = np.repeat([f"c/{i}" for i in range(30)], 2)
    z = np.repeat(rng.standard_normal((30, 2)) * 1.5, 2, axis=0) + rng.normal(0, 0.3, (60, 2))
    train = np.arange(60) < 40
    attribute_probes(z, ["fc.A--B", "graph.efficiency"], train, {"x": rng.standard_normal((60, 4))}, n_null=4,
                     seed=0, subjects=subjects)
    assert list(seen["subjects"]) == list(subjects[train])
    for shuffled in seen["shuffles"]:
        assert (shuffled[0::2] == shuffled[1::2]).all()  # both scans of a subject share one shuffled band
