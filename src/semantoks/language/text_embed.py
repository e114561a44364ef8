"""The text_embed stage: every descriptor text -> a row of the frozen text space, plus the encoder's identity."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from semantoks.atomic import atomic_path, write_json
from semantoks.errors import SemantoksError
from semantoks.language.descriptors import read_reference
from semantoks.language.text_encoders import check_encoder_identity, load_text_encoder
from semantoks.probes.labels import subject_key

TEXT_COLUMNS = ["cohort", "scan_id", "subject", "session", "level", "unit", "variant", "augment"]


def embed_texts(descriptor_dir, encoder_name, out_parquet, out_json):
    """Encode texts.parquet; a fitted encoder (hashing IDF) sees the training subjects' texts only."""
    descriptor_dir = Path(descriptor_dir)
    record, _ = read_reference(descriptor_dir / "reference.json")
    texts = pd.read_parquet(descriptor_dir / "texts.parquet")
    encoder, embeddings = fit_and_encode(texts, record["split"]["train"], encoder_name)
    state = encoder.state()
    write_text_embeddings(out_parquet, texts[TEXT_COLUMNS], embeddings)
    write_json(out_json, {"encoder": encoder.identity, "state": state, "descriptor_identity": record["identity"],
                          "dim": int(embeddings.shape[1]), "n_texts": int(len(texts))})
    return encoder


def fit_and_encode(texts, train_subjects, encoder_name):
    """(encoder, embeddings [n, d]) of a texts table; a fitted encoder (hashing IDF) sees the training subjects' texts only."""
    train = set(train_subjects)
    is_train = np.array([subject_key(c, s) in train for c, s in zip(texts["cohort"], texts["subject"])], dtype=bool)
    corpus = texts.loc[is_train, "text"].tolist() if encoder_name == "hashing" else None
    encoder = load_text_encoder(encoder_name, corpus=corpus)
    return encoder, encoder.encode(texts["text"].tolist())


def write_text_embeddings(path, keys, embeddings):
    table = pa.Table.from_pandas(keys.reset_index(drop=True), preserve_index=False)
    flat = pa.array(np.ascontiguousarray(embeddings, dtype=np.float32).ravel(), type=pa.float32())
    table = table.append_column("embedding", pa.FixedSizeListArray.from_arrays(flat, embeddings.shape[1]))
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_text_embeddings(parquet, identity_json):
    """(keys DataFrame, embeddings float32 [n, d], identity record) of the text_embed stage."""
    for path in (parquet, identity_json):
        if not Path(path).is_file():
            raise SemantoksError(f"{path}: text embeddings not found; run the text_embed stage first.")
    table = pq.read_table(parquet)
    dim = table.schema.field("embedding").type.list_size
    values = table.column("embedding").combine_chunks().values.to_numpy(zero_copy_only=False)
    return table.drop(["embedding"]).to_pandas(), values.reshape(-1, dim), json.loads(Path(identity_json).read_text())


def encoder_from_record(record):
    """The text encoder a text_embed record was made with, reloaded (no network) and checked."""
    encoder = load_text_encoder(record["encoder"]["name"], state=record["state"] or None)
    check_encoder_identity(record["encoder"], encoder.identity, "text embeddings")
    return encoder
