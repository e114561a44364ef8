"""sha256 of a file, read in blocks: the identity of checkpoints and text-encoder weights."""

import hashlib


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()
