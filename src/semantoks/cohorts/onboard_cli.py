"""Arguments of `semantoks onboard` (kept apart so the CLI builds its parser without importing pandas)."""

DEFAULT_SPACE = "MNI152NLin2009cAsym:res-2"


def add_arguments(parser):
    parser.add_argument("--name", required=True, help="cohort name (letters and digits), its key under cohorts:")
    parser.add_argument("--derivatives", help="fMRIPrep derivatives root (existing, or where fMRIPrep will write)")
    parser.add_argument("--bids", help="raw BIDS root (to be run through fMRIPrep, or to look up metadata)")
    parser.add_argument("--roi", help="folder of ROI time-series files (one per scan), for a cohort already parcellated")
    parser.add_argument("--pattern", help=r"with --roi: regular expression with (?P<subject>...) matched in each file's "
                        r"path (default: the first run of 3+ digits)")
    parser.add_argument("--site-column", help="with --roi: phenotype column holding each subject's site (per-site TR)")
    parser.add_argument("--tr-column", help="with --roi: phenotype column holding the TR in seconds (else TRs are marked "
                        "FILL_IN)")
    parser.add_argument("--parcellation", help="with --roi: name of the atlas the series were extracted with (e.g. CC200)")
    parser.add_argument("--labels", help="with --roi: the parcellation's labels table (name, network per file column)")
    parser.add_argument("--phenotypes", required=True, help="participant table (TSV or CSV), one row per participant")
    parser.add_argument("--participant-column", default="participant_id", help="column with the subject labels")
    parser.add_argument("--task", help="keep only runs of this BIDS task")
    parser.add_argument("--space", default=DEFAULT_SPACE, help=f"output space the atlas needs (default {DEFAULT_SPACE})")
    parser.add_argument("--out", default="cohort.yaml", help="where to write the cohort entry (default cohort.yaml)")
    parser.add_argument("--report", help="also save the report text here")
    parser.add_argument("--cache-dir", help="index cache folder (default $SEMANTOKS_CACHE_DIR or ~/.cache/semantoks)")
    parser.add_argument("--no-cache", action="store_true", help="index without reading or writing the cache")
    return parser
