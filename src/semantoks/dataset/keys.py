"""How a scan and a subject are named across stages: the key columns of every per-scan table and the subject key."""

# the columns that identify a scan in embeddings, feature tables and descriptor tables
KEY_COLUMNS = ("cohort", "scan_id", "subject", "session")


def subject_key(cohort, subject):
    """One subject across stages: subjects of different cohorts never share a key, so never cross a split."""
    return f"{cohort}/{subject}"


def key_cohort(key):
    """The cohort of a `subject_key`."""
    return key.split("/", 1)[0]
